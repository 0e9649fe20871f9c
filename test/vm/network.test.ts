import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Spec, State } from '../../oci/spec.js';
import { vmDirOf } from '../../runtime/src/sandbox/vm-dir.js';
import {
  kapsel,
  kapselToFiles,
  makeBundle,
  processesMentioning,
  removeBundles,
  vmMissing,
} from '../support/kapsel-cli.js';
import { hostNetworkSnapshot, TestNetns } from '../support/netns.js';

const skip = vmMissing();

const CRI_TYPE = 'io.kubernetes.cri.container-type';
const CRI_SANDBOX = 'io.kubernetes.cri.sandbox-id';

/** The default spec with a process, a writable /tmp and the given network namespace path. */
function podSpec(spec: Spec, netns: string | undefined, args: string[]): void {
  if (spec.process === undefined) throw new Error('default spec has no process');
  spec.process = { ...spec.process, args, terminal: false };
  spec.mounts = [...(spec.mounts ?? []), { destination: '/tmp', type: 'tmpfs', source: 'tmpfs' }];
  const namespaces = (spec.linux?.namespaces ?? []).filter((n) => n.type !== 'network');
  if (netns !== undefined) namespaces.push({ type: 'network', path: netns });
  spec.linux = { ...spec.linux, namespaces };
}

/**
 * A pod as CNI and CRI make it: the engine's namespace (here the test's, with
 * a veth to a peer namespace standing for the rest of the network), named by
 * path in every container's spec. The sandbox mirrors it into its VM; the
 * pod's containers share the one interface and talk over localhost.
 */
describe.skipIf(skip !== undefined)(
  `networking from a namespace path (CNI, pods)${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const root = mkdtempSync(join(tmpdir(), 'kapsel-root-'));
    const work = mkdtempSync(join(tmpdir(), 'kapsel-net-'));
    let podNs: TestNetns;
    let peer: TestNetns;
    let before = '';
    const k = (...args: string[]): ReturnType<typeof kapsel> => kapsel(['--root', root, ...args]);
    beforeAll(() => {
      before = hostNetworkSnapshot();
      podNs = TestNetns.create('ktpod');
      peer = TestNetns.create('ktpeer');
      peer.link(podNs, 'peer0', '10.251.0.1/24', 'eth0', '10.251.0.2/24');
      peer.ip(['addr', 'add', 'fd51::1/64', 'dev', 'peer0', 'nodad']);
      podNs.ip(['addr', 'add', 'fd51::2/64', 'dev', 'eth0', 'nodad']);
      podNs.ip(['route', 'add', 'default', 'via', '10.251.0.1']);
    });
    // A failed check leaves its containers, which hold the pod's namespace:
    // they go after each test, so one failure does not fail the next test.
    afterEach(async () => {
      for (const id of ['netpod-app', 'netpod', 'netlate']) await k('delete', '--force', id);
    });
    afterAll(() => {
      podNs.remove();
      peer.remove();
      rmSync(root, { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
      removeBundles();
      expect(hostNetworkSnapshot()).toBe(before);
    });

    it('a pod of two containers shares the interface of its namespace and talks over localhost', async () => {
      const pod = 'netpod';
      const sandbox = makeBundle((s) => {
        podSpec(s, podNs.path, [
          'sh',
          '-c',
          'echo pod-page > /tmp/index.html && exec httpd -f -p 80 -h /tmp',
        ]);
        s.annotations = { [CRI_TYPE]: 'sandbox', [CRI_SANDBOX]: pod };
      });
      const app = makeBundle((s) => {
        podSpec(s, podNs.path, [
          'sh',
          '-c',
          "ip -o addr show eth0 scope global | awk '{print $3, $4}'; ip route | grep default; printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 127.0.0.1 80 | tail -1",
        ]);
        s.annotations = { [CRI_TYPE]: 'container', [CRI_SANDBOX]: pod };
      });
      const started = await kapselToFiles(
        ['--root', root, 'run', '-d', '--bundle', sandbox, pod],
        work,
      );
      expect(started.stderr()).toBe('');
      expect(started.code).toBe(0);
      // From the rest of the network, by IPv4 and IPv6: the guest answers.
      expect(await peer.get('http://10.251.0.2/index.html')).toBe('pod-page\n');
      expect(await peer.get('http://[fd51::2]/index.html')).toBe('pod-page\n');
      const created = await kapselToFiles(
        ['--root', root, 'create', '--bundle', app, 'netpod-app'],
        work,
      );
      expect(created.stderr()).toBe('');
      expect((await k('start', 'netpod-app')).code).toBe(0);
      for (let i = 0; i < 200; i++) {
        const s = JSON.parse((await k('state', 'netpod-app')).stdout) as State;
        if (s.status === 'stopped') break;
        await sleep(100);
      }
      expect(created.stdout()).toBe(
        'inet 10.251.0.2/24\ninet6 fd51::2/64\ndefault via 10.251.0.1 dev eth0 \npod-page\n',
      );
      // One tap for the one interface, in the pod's namespace only.
      expect(podNs.ip(['-br', 'link']).match(/_kapsel/g)).toHaveLength(1);
      expect((await k('delete', 'netpod-app')).code).toBe(0);
      expect((await k('delete', '--force', pod)).code).toBe(0);
      expect(processesMentioning(vmDirOf(root, pod))).toEqual([]);
      expect(existsSync(vmDirOf(root, pod))).toBe(false);
      // The engine's namespace is as the engine made it: no tap, no qdisc of ours.
      expect(podNs.ip(['-br', 'link'])).not.toContain('_kapsel');
      expect(podNs.run(['tc', 'qdisc', 'show', 'dev', 'eth0'])).not.toContain('ingress');
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(root);
    });

    it('follows links the engine adds and removes later, and a killed sandbox process leaves nothing after delete --force', async () => {
      const id = 'netlate';
      const b = makeBundle((s) => {
        podSpec(s, podNs.path, [
          'sh',
          '-c',
          'echo late > /tmp/index.html && exec httpd -f -p 80 -h /tmp',
        ]);
      });
      const started = await kapselToFiles(['--root', root, 'run', '-d', '--bundle', b, id], work);
      expect(started.stderr()).toBe('');
      expect(await peer.get('http://10.251.0.2/index.html')).toBe('late\n');
      // As `docker network connect` does: a second link, configured after start.
      peer.link(podNs, 'peer1', '10.253.0.1/24', 'eth1', '10.253.0.2/24');
      expect(await peer.get('http://10.253.0.2/index.html')).toBe('late\n');
      const addrs = async (): Promise<string> =>
        (await k('exec', id, 'sh', '-c', "ip -o -4 addr show | awk '{print $2, $4}'")).stdout;
      expect(await addrs()).toBe('lo 127.0.0.1/8\neth0 10.251.0.2/24\neth1 10.253.0.2/24\n');
      // As `docker network disconnect` does: the link goes, and so does the NIC.
      podNs.ip(['link', 'del', 'eth1']);
      let now = '';
      for (let i = 0; i < 150 && (now = await addrs()).includes('eth1'); i++) await sleep(200);
      expect(now).toBe('lo 127.0.0.1/8\neth0 10.251.0.2/24\n');
      expect(podNs.ip(['-br', 'link']).match(/_kapsel/g)).toHaveLength(1);
      const sandboxPid = Number(readFileSync(join(vmDirOf(root, id), 'monitor.pid'), 'utf8'));
      // Docker's --network container:X names X's namespace: another VM's, refused.
      const joiner = makeBundle((s) => {
        podSpec(s, `/proc/${sandboxPid}/ns/net`, ['true']);
      });
      const refused = await k('create', '--bundle', joiner, 'netjoin');
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain("is another kapsel sandbox's");
      expect(existsSync(join(root, 'netjoin'))).toBe(false);
      // The sandbox process dies without cleaning up; delete --force does.
      process.kill(sandboxPid, 'SIGKILL');
      expect((await k('delete', '--force', id)).code).toBe(0);
      expect(processesMentioning(vmDirOf(root, id))).toEqual([]);
      // No process of ours (QEMU, virtiofsd, `ip monitor`) is left in the namespace.
      expect(execFileSync('ip', ['netns', 'pids', podNs.name], { encoding: 'utf8' })).toBe('');
      expect(podNs.ip(['-br', 'link'])).not.toContain('_kapsel');
      expect(podNs.run(['tc', 'qdisc', 'show', 'dev', 'eth0'])).not.toContain('ingress');
    });

    it.each([
      [
        'no network namespace (--network host)',
        undefined,
        "cannot share the host's network namespace (--network host)",
      ],
      ["the engine's own namespace by path", '/proc/self/ns/net', "is the host's"],
      ['a namespace that does not exist', '/run/netns/kapsel-no-such', 'does not exist'],
    ])('refuses %s before anything boots', async (_what, path, message) => {
      const b = makeBundle((s) => {
        podSpec(s, path, ['true']);
      });
      const r = await k('create', '--bundle', b, 'refused');
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(message);
      expect(existsSync(join(root, 'refused'))).toBe(false);
      expect(processesMentioning(vmDirOf(root, 'refused'))).toEqual([]);
    });
  },
);
