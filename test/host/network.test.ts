// The network RPCs (UpdateInterface, UpdateRoutes, AddARPNeighbors,
// ListInterfaces, ListRoutes) and lo in a new network namespace, against the
// real agent standalone (root, no VM). The agent runs inside a private
// network namespace the test makes and deletes, which plays the guest's root
// namespace; a veth end in it plays the hot-plugged virtio-net NIC, its peer
// (left there) the host side. The machine's own namespace is never changed,
// and the end checks so.
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IPFamily, type Interface } from '../../proto/generated/agent.js';
import type { Process } from '../../oci/spec.js';
import { AgentClient } from '../../runtime/src/agent/client.js';
import { isRoot, type StandaloneAgent } from '../support/agent-process.js';
import { startAgentFixture, stopAgentFixture } from '../support/agent-fixture.js';
import { busyboxMissing, makeBusyboxRootfs } from '../support/busybox.js';
import { collect, failureOf } from '../support/engine.js';
import {
  hostNetSnapshot,
  NetworkClient,
  PrivateNetns,
  type HostNetSnapshot,
} from '../support/netns.js';
import { testSpec } from '../support/spec.js';

const skip = !isRoot ? 'needs root' : busyboxMissing();

/** UpdateInterface's wait for an unknown MAC, short for the refusal case. */
const NIC_WAIT_MS = 300;

const V4 = IPFamily.IP_FAMILY_V4;
const V6 = IPFamily.IP_FAMILY_V6;

describe.skipIf(skip !== undefined)(
  `container networking in the guest${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let before: HostNetSnapshot;
    let netns: PrivateNetns;
    let agent: StandaloneAgent;
    let client: AgentClient;
    let net: NetworkClient;
    let rootfs: string;
    /** The "NIC" (veth end) and the host side's MAC (its peer). */
    let nicMac: string;
    let peerMac: string;
    let n = 0;
    const nextId = (): string => `net${++n}-${process.pid}`;

    beforeAll(async () => {
      before = hostNetSnapshot();
      netns = new PrivateNetns();
      netns.ip('link', 'set', 'lo', 'up');
      ({ agent, client, rootfs } = await startAgentFixture(
        makeBusyboxRootfs,
        { KAPSEL_NIC_WAIT_MS: String(NIC_WAIT_MS) },
        { netns: netns.path },
      ));
      net = new NetworkClient(agent.socket);
    });

    afterAll(async () => {
      net.close();
      await stopAgentFixture({ agent, client, rootfs });
      netns.remove();
      expect(netns.exists).toBe(false);
      const after = hostNetSnapshot();
      expect(after.routes).toBe(before.routes);
      // Every link the machine had is as it was, and none of ours leaked
      // out (other tests may add links of their own meanwhile).
      for (const [name, state] of before.links) expect(after.links.get(name)).toBe(state);
      for (const name of ['kv0', 'kv1', 'eth0']) {
        if (!before.links.has(name)) expect(after.links.has(name)).toBe(false);
      }
    });

    /**
     * A new veth pair in the agent's namespace: kv0 plays the hot-plugged
     * NIC, kv1 (with the gateway addresses) the host side. A container's
     * removal takes the previous pair with its namespace, a little later.
     */
    function freshNic(): void {
      try {
        netns.ip('link', 'del', 'kv1');
      } catch {
        // Already gone with the last container's namespace.
      }
      netns.ip('link', 'add', 'kv0', 'type', 'veth', 'peer', 'name', 'kv1');
      netns.ip('addr', 'add', '10.200.0.1/24', 'dev', 'kv1');
      netns.ip('addr', 'add', 'fd00:200::1/64', 'dev', 'kv1', 'nodad');
      netns.ip('link', 'set', 'kv1', 'up');
      const links = netns.links();
      nicMac = links.find((l) => l.ifname === 'kv0')?.address ?? '';
      peerMac = links.find((l) => l.ifname === 'kv1')?.address ?? '';
    }

    /** A running `sleep` container; with its own network namespace unless told. */
    async function startSleeper(ownNetns = true): Promise<string> {
      const id = nextId();
      const spec = testSpec(rootfs, ['sleep', '1000'], 'net-box');
      if (ownNetns) spec.linux?.namespaces?.push({ type: 'network' });
      await client.createContainer({ containerId: id, ociSpecJson: JSON.stringify(spec) });
      await client.startContainer(id);
      return id;
    }

    async function exec(id: string, args: string[]) {
      const execId = `e${++n}`;
      const p: Process = { user: { uid: 0, gid: 0 }, args, env: ['PATH=/bin'], cwd: '/' };
      await client.execProcess(id, execId, JSON.stringify(p));
      const stdout = collect(client.readOutput('stdout', id, execId));
      const stderr = collect(client.readOutput('stderr', id, execId));
      const exit = await client.waitProcess(id, execId);
      return { exit, stdout: await stdout, stderr: await stderr };
    }

    const eth0 = (): Interface => ({
      name: 'eth0',
      hwAddr: nicMac,
      mtu: 1400,
      ipAddresses: [
        { family: V4, address: '10.200.0.2', prefixLength: 24 },
        { family: V6, address: 'fd00:200::2', prefixLength: 64 },
      ],
    });

    it('moves the NIC in, configures it, routes and neighbours, and packets flow', async () => {
      freshNic();
      const id = await startSleeper();
      let t = Date.now();
      const first = await net.updateInterface({ containerId: id, interface: eth0() });
      const firstMs = Date.now() - t;
      expect(first).toMatchObject({ name: 'eth0', hwAddr: nicMac, mtu: 1400 });
      expect(first.ipAddresses).toEqual(
        expect.arrayContaining([
          { family: V4, address: '10.200.0.2', prefixLength: 24 },
          { family: V6, address: 'fd00:200::2', prefixLength: 64 },
        ]),
      );
      // The NIC has left the agent's namespace.
      expect(netns.ip('-j', 'link', 'show')).not.toContain(nicMac);

      const routes = await net.updateRoutes({
        containerId: id,
        routes: [
          { family: V4, dest: 'default', gateway: '10.200.0.1', device: 'eth0' },
          { family: V6, dest: 'default', gateway: 'fd00:200::1', device: 'eth0' },
          { family: V4, dest: '192.0.2.0/24', device: 'eth0', scope: 'link', metric: 7 },
        ],
      });
      expect(routes.routes).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            family: V4,
            dest: 'default',
            gateway: '10.200.0.1',
            device: 'eth0',
          }),
          expect.objectContaining({
            family: V6,
            dest: 'default',
            gateway: 'fd00:200::1',
            device: 'eth0',
          }),
          expect.objectContaining({ family: V4, dest: '192.0.2.0/24', scope: 'link', metric: 7 }),
          // The kernel's own, for the address.
          expect.objectContaining({ family: V4, dest: '10.200.0.0/24', source: '10.200.0.2' }),
        ]),
      );

      await net.addArpNeighbors({
        containerId: id,
        neighbors: [{ family: V4, toIp: '10.200.0.1', device: 'eth0', llAddr: peerMac }],
      });
      const arp = await exec(id, ['cat', '/proc/net/arp']);
      // Flags 0x6: ATF_COM | ATF_PERM, a permanent entry.
      expect(arp.stdout).toMatch(
        new RegExp(`^10\\.200\\.0\\.1 +0x1 +0x6 +${peerMac} .* eth0$`, 'm'),
      );

      // Again, unchanged: nothing moves, the routes survive.
      t = Date.now();
      const again = await net.updateInterface({ containerId: id, interface: eth0() });
      const againMs = Date.now() - t;
      expect(again).toEqual(first);
      const listed = await net.listRoutes(id);
      expect(listed.routes).toEqual(routes.routes);
      console.log(`UpdateInterface: ${firstMs} ms moving the NIC in, ${againMs} ms again`);

      const { interfaces } = await net.listInterfaces(id);
      expect(interfaces.map((i) => i.name).sort()).toEqual(['eth0', 'lo']);
      expect(interfaces.find((i) => i.name === 'eth0')).toEqual(again);

      for (const peer of ['10.200.0.1', 'fd00:200::1']) {
        const ping = await exec(id, ['ping', '-c1', '-W2', peer]);
        expect(ping, `ping ${peer}`).toMatchObject({ exit: { exitCode: 0 } });
      }
      await client.removeContainer(id);
    });

    it('swaps addresses on a repeated UpdateInterface without losing routes', async () => {
      freshNic();
      const id = await startSleeper();
      await net.updateInterface({ containerId: id, interface: eth0() });
      await net.updateRoutes({
        containerId: id,
        routes: [{ family: V4, dest: 'default', gateway: '10.200.0.1', device: 'eth0' }],
      });
      const changed = await net.updateInterface({
        containerId: id,
        interface: {
          ...eth0(),
          mtu: 1300,
          ipAddresses: [{ family: V4, address: '10.200.0.3', prefixLength: 24 }],
        },
      });
      expect(changed.mtu).toBe(1300);
      // The IPv6 link-local address (the kernel's) stays; ours are exact.
      expect(changed.ipAddresses.filter((a) => !a.address.startsWith('fe80:'))).toEqual([
        { family: V4, address: '10.200.0.3', prefixLength: 24 },
      ]);
      const { routes } = await net.listRoutes(id);
      expect(routes).toContainEqual(
        expect.objectContaining({ dest: 'default', gateway: '10.200.0.1' }),
      );
      const ping = await exec(id, ['ping', '-c1', '-W2', '10.200.0.1']);
      expect(ping.exit.exitCode).toBe(0);
      await client.removeContainer(id);
    });

    it('brings lo up in a new network namespace: 127.0.0.1 and ::1, TCP over it', async () => {
      const id = await startSleeper();
      const { interfaces } = await net.listInterfaces(id);
      expect(interfaces).toEqual([
        {
          name: 'lo',
          hwAddr: '00:00:00:00:00:00',
          mtu: 65536,
          ipAddresses: [
            { family: V4, address: '127.0.0.1', prefixLength: 8 },
            { family: V6, address: '::1', prefixLength: 128 },
          ],
        },
      ]);
      const shown = await exec(id, ['ip', 'addr', 'show', 'lo']);
      expect(shown.stdout).toMatch(/<LOOPBACK,UP,LOWER_UP>/);
      expect(shown.stdout).toContain('inet 127.0.0.1/8');
      const tcp = await exec(id, [
        'sh',
        '-c',
        'nc -l -p 7777 > /tmp/got & sleep 0.3; echo hello | nc 127.0.0.1 7777; wait; cat /tmp/got',
      ]);
      expect(tcp).toMatchObject({ exit: { exitCode: 0 }, stdout: 'hello\n' });
      await client.removeContainer(id);
    });

    describe('refusals', () => {
      let own: string;
      let shared: string;
      beforeAll(async () => {
        freshNic();
        own = await startSleeper();
        shared = await startSleeper(false);
      });
      afterAll(async () => {
        await client.removeContainer(own);
        await client.removeContainer(shared);
      });

      const cases: {
        name: string;
        call: () => Promise<unknown>;
        code: status;
        errorContains: string;
      }[] = [
        {
          name: 'an unknown container',
          call: () => net.updateInterface({ containerId: 'nope', interface: eth0() }),
          code: status.NOT_FOUND,
          errorContains: 'container nope does not exist',
        },
        {
          name: 'a container sharing the guest network namespace',
          call: () => net.updateInterface({ containerId: shared, interface: eth0() }),
          code: status.FAILED_PRECONDITION,
          errorContains: 'has no network namespace of its own',
        },
        {
          name: 'listing one sharing the guest network namespace',
          call: () => net.listInterfaces(shared),
          code: status.FAILED_PRECONDITION,
          errorContains: 'has no network namespace of its own',
        },
        {
          name: 'a bad MAC',
          call: () =>
            net.updateInterface({
              containerId: own,
              interface: { ...eth0(), hwAddr: '02:00:00:00:00' },
            }),
          code: status.INVALID_ARGUMENT,
          errorContains: 'interface.hw_addr: not a MAC address',
        },
        {
          name: 'a bad prefix length',
          call: () =>
            net.updateInterface({
              containerId: own,
              interface: {
                ...eth0(),
                ipAddresses: [
                  { family: V6, address: 'fd00::9', prefixLength: 64 },
                  { family: V4, address: '10.1.0.2', prefixLength: 40 },
                ],
              },
            }),
          code: status.INVALID_ARGUMENT,
          errorContains: 'interface.ip_addresses[1].prefix_length: must be 0..32 for IPv4, got 40',
        },
        {
          name: 'an address of the other family',
          call: () =>
            net.updateInterface({
              containerId: own,
              interface: { ...eth0(), ipAddresses: [{ family: V4, address: 'fd00::9' }] },
            }),
          code: status.INVALID_ARGUMENT,
          errorContains: 'interface.ip_addresses[0].address: not an IPv4 address: "fd00::9"',
        },
        {
          name: 'a MAC no NIC has',
          call: () =>
            net.updateInterface({
              containerId: own,
              interface: { ...eth0(), hwAddr: '02:00:00:00:00:99' },
            }),
          code: status.NOT_FOUND,
          errorContains: `no network interface with MAC 02:00:00:00:00:99 appeared in the guest within ${NIC_WAIT_MS} ms`,
        },
        {
          name: 'a route with a bad gateway',
          call: () =>
            net.updateRoutes({
              containerId: own,
              routes: [{ family: V6, dest: 'default', gateway: '10.0.0.1', device: 'lo' }],
            }),
          code: status.INVALID_ARGUMENT,
          errorContains: 'routes[0].gateway: not an IPv6 address: "10.0.0.1"',
        },
        {
          name: 'a route ip refuses (gateway not on any link)',
          call: () =>
            net.updateRoutes({
              containerId: own,
              routes: [{ family: V4, dest: '198.51.100.0/24', gateway: '192.0.2.1' }],
            }),
          code: status.FAILED_PRECONDITION,
          errorContains: `ip route replace 198.51.100.0/24 via 192.0.2.1 (in the network namespace of container`,
        },
        {
          name: 'a neighbour on a missing device',
          call: () =>
            net.addArpNeighbors({
              containerId: own,
              neighbors: [{ family: V4, toIp: '10.0.0.1', device: 'eth9', llAddr: peerMac }],
            }),
          code: status.FAILED_PRECONDITION,
          errorContains: 'ip neigh replace 10.0.0.1 lladdr',
        },
      ];

      it.each(cases)('refuses $name', async ({ call, code, errorContains }) => {
        const err = await failureOf(call());
        expect(err?.details).toContain(errorContains);
        expect(err?.code).toBe(code);
      });
    });
  },
);
