import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot } from '../support/agent-process.js';
import { ROOT } from '../support/kapsel-cli.js';
import { hostNetworkSnapshot, TestNetns } from '../support/netns.js';

// The DNS relay end to end without a VM: Docker's embedded DNS, as Docker
// sets it up, in one test namespace ("the container's host namespace":
// dnsmasq on 127.0.0.11:<port>, reached through an iptables DNAT from
// 127.0.0.11:53 in OUTPUT, as libnetwork's resolver does), the sandbox
// process's end (HostDnsRelay) in it, and the guest's kapsel-dns-relay in
// another namespace ("the container's guest namespace"). The virtio-serial
// port between them is played by this test: two unix sockets spliced, the
// way QEMU splices its chardev to the port (bytes with nobody on the other
// side are dropped).

const RELAY = join(ROOT, 'build/native/kapsel-dns-relay');
const ADDRESS = '127.0.0.11';
const DNSMASQ_PORT = 5353;

function missing(): string | undefined {
  if (!isRoot) return 'needs root (network namespaces)';
  if (!existsSync(RELAY)) return `${RELAY} missing (make -C native)`;
  for (const tool of ['dnsmasq', 'ip', 'iptables', 'nsenter', 'getent', 'unshare']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} not installed (scripts/setup.sh)`;
    }
  }
  return undefined;
}
const skip = missing();

/**
 * Runs a program in a namespace without blocking this process, which plays
 * the port in between and must keep splicing while the program waits.
 */
async function runIn(ns: TestNetns, args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)('nsenter', [`--net=${ns.path}`, '--', ...args], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  return stdout;
}

/** QEMU's part: whatever one side writes reaches the other's current connection. */
class FakePort {
  host: Socket | undefined;
  guest: Socket | undefined;
  readonly servers: Server[] = [];

  async listen(hostPath: string, guestPath: string): Promise<void> {
    for (const [path, side] of [
      [hostPath, 'host'],
      [guestPath, 'guest'],
    ] as const) {
      const server = createServer((sock) => {
        this[side]?.destroy();
        this[side] = sock;
        sock.on('data', (d: Buffer) => {
          const other = side === 'host' ? this.guest : this.host;
          other?.write(d);
        });
        sock.on('error', () => undefined);
        sock.on('close', () => {
          if (this[side] === sock) this[side] = undefined;
        });
      });
      await new Promise<void>((resolve) => server.listen(path, resolve));
      this.servers.push(server);
    }
  }

  close(): void {
    this.host?.destroy();
    this.guest?.destroy();
    for (const s of this.servers) s.close();
  }
}

/** Resolves with the output once `word` appears on stdout (or stderr: `on`). */
function started(
  child: ChildProcess,
  word: string,
  what: string,
  on: 'stdout' | 'stderr' = 'stdout',
): Promise<string> {
  let out = '';
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${what} did not start:\n${err}`));
    }, 30_000);
    child[on]?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(word)) {
        clearTimeout(timer);
        resolve(out);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}):\n${err}`));
    });
  });
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<boolean>((resolve) =>
    child.once('exit', () => {
      resolve(true);
    }),
  );
  child.kill('SIGTERM');
  if (!(await Promise.race([exited, sleep(5000).then(() => false)]))) child.kill('SIGKILL');
}

describe.skipIf(skip !== undefined)(
  `the DNS relay to a resolver in the host namespace${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const before = skip === undefined ? hostNetworkSnapshot() : '';
    const dir = mkdtempSync(join(tmpdir(), 'kapsel-dns-'));
    const port = new FakePort();
    const children: ChildProcess[] = [];
    let hostNs: TestNetns;
    let guestNs: TestNetns;
    let relay: ChildProcess;

    const query = async (mode: string, ...names: string[]): Promise<string[]> =>
      (
        await runIn(guestNs, [
          process.execPath,
          '--import',
          'tsx',
          join(ROOT, 'test/support/dns-query.ts'),
          mode,
          ADDRESS,
          ...names,
        ])
      )
        .trim()
        .split('\n');

    beforeAll(async () => {
      hostNs = TestNetns.create('kdns-h');
      guestNs = TestNetns.create('kdns-g');
      // An interface besides lo, as a container has: glibc's getaddrinfo
      // (AI_ADDRCONFIG) asks for no IPv4 address when lo's is the only one.
      hostNs.link(guestNs, 'veth0', '192.0.2.1/24', 'eth0', '192.0.2.2/24');
      // libnetwork's resolver: a DNAT of 127.0.0.11:53 to its own port and
      // the SNAT back (resolver_unix.go), both transports.
      for (const proto of ['udp', 'tcp']) {
        hostNs.run([
          'iptables', '-t', 'nat', '-A', 'OUTPUT', '-d', ADDRESS, '-p', proto, '--dport', '53',
          '-j', 'DNAT', '--to-destination', `${ADDRESS}:${DNSMASQ_PORT}`,
        ]); // prettier-ignore
        hostNs.run([
          'iptables', '-t', 'nat', '-A', 'POSTROUTING', '-s', ADDRESS, '-p', proto, '--sport',
          String(DNSMASQ_PORT), '-j', 'SNAT', '--to-source', ':53',
        ]); // prettier-ignore
      }
      // 60 addresses for one name: over 512 bytes, so a UDP answer is truncated.
      const hosts = join(dir, 'hosts');
      writeFileSync(
        hosts,
        [
          '10.1.2.3 web.test',
          ...Array.from({ length: 60 }, (_, i) => `10.9.0.${i + 1} big.test`),
        ].join('\n') + '\n',
      );
      const dnsmasq = spawn(
        'nsenter',
        [
          `--net=${hostNs.path}`, '--', 'dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null',
          '--no-resolv', '--local=/test/', '--no-hosts', `--addn-hosts=${hosts}`, `--listen-address=${ADDRESS}`,
          '--bind-interfaces', `--port=${DNSMASQ_PORT}`, '--user=root', '--pid-file=',
          '--log-facility=-',
        ], // prettier-ignore
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      children.push(dnsmasq);
      await port.listen(join(dir, 'dns.sock'), join(dir, 'port.sock'));
      const hostEnd = spawn(
        'nsenter',
        [
          `--net=${hostNs.path}`,
          '--',
          process.execPath,
          '--import',
          'tsx',
          join(ROOT, 'test/support/dns-host-end.ts'),
          join(dir, 'dns.sock'),
          ADDRESS,
        ],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      children.push(hostEnd);
      await started(dnsmasq, 'started, version', 'dnsmasq', 'stderr');
      // The sandbox process checks that a resolver answers there (through the DNAT).
      expect(await started(hostEnd, 'started', 'the host end')).toContain('listens=true');
      relay = spawn(
        'nsenter',
        [`--net=${guestNs.path}`, '--', RELAY, ADDRESS, join(dir, 'port.sock')],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      children.push(relay);
      await started(relay, 'ready\n', 'kapsel-dns-relay');
      for (let i = 0; i < 100 && (port.host === undefined || port.guest === undefined); i++) {
        await sleep(50);
      }
    });

    afterAll(async () => {
      for (const c of children.reverse()) await stop(c);
      port.close();
      guestNs.remove();
      hostNs.remove();
      rmSync(dir, { recursive: true, force: true });
      expect(hostNetworkSnapshot()).toBe(before);
    });

    it('answers a UDP query in the guest namespace from the resolver in the host one (busybox nslookup)', async () => {
      const out = await runIn(guestNs, ['busybox', 'nslookup', 'web.test', ADDRESS]);
      expect(out).toContain('10.1.2.3');
    });

    it('answers UDP and TCP queries, and several pipelined on one TCP connection (RFC 7766)', async () => {
      expect(await query('udp', 'web.test')).toEqual(['web.test rcode=0 a=10.1.2.3']);
      expect(await query('tcp', 'web.test')).toEqual(['web.test rcode=0 a=10.1.2.3']);
      const pipelined = await query('tcp-pipelined', 'web.test', 'big.test', 'nosuch.test');
      expect(pipelined[0]).toBe('web.test rcode=0 a=10.1.2.3');
      expect(pipelined[1]?.split('a=')[1]?.split(',')).toHaveLength(60);
      expect(pipelined[2]).toMatch(/^nosuch\.test rcode=3 /);
    });

    it('keeps the transport: a truncated UDP answer makes glibc retry over TCP and get every address', async () => {
      expect((await query('udp', 'big.test'))[0]).toMatch(/^big\.test rcode=0 tc /);
      // glibc's resolver with a resolv.conf as Docker writes it, in a private
      // mount namespace (the machine's /etc/resolv.conf is not touched).
      const conf = join(dir, 'resolv.conf');
      writeFileSync(conf, `nameserver ${ADDRESS}\noptions ndots:0\n`);
      const out = await runIn(guestNs, [
        'unshare',
        '-m',
        'sh',
        '-c',
        `mount --bind ${conf} /etc/resolv.conf && getent ahostsv4 big.test`,
      ]);
      const addresses = new Set(
        out
          .split('\n')
          .map((l) => l.split(/\s+/)[0])
          .filter(Boolean),
      );
      expect(addresses.size).toBe(60);
    });

    it('comes back after the host side of the port disconnects and reconnects', async () => {
      port.host?.destroy();
      for (let i = 0; i < 100 && port.host === undefined; i++) await sleep(50);
      expect(port.host).toBeDefined();
      expect(await query('udp', 'web.test')).toEqual(['web.test rcode=0 a=10.1.2.3']);
    });

    it('survives garbage from the host and serves again', async () => {
      port.guest?.write(Buffer.from('this is not a frame at all'));
      await sleep(400);
      expect(relay.exitCode).toBeNull();
      expect(await query('udp', 'web.test')).toEqual(['web.test rcode=0 a=10.1.2.3']);
    });

    it('exits when the process it watches exits', async () => {
      const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
      const other = createServer(() => undefined);
      await new Promise<void>((resolve) => other.listen(join(dir, 'port2.sock'), resolve));
      port.servers.push(other);
      const watcher = spawn(
        'nsenter',
        [
          `--net=${guestNs.path}`,
          '--',
          RELAY,
          '127.0.0.12',
          join(dir, 'port2.sock'),
          String(sleeper.pid),
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      children.push(watcher, sleeper);
      await started(watcher, 'ready\n', 'the second relay');
      const exited = new Promise<number | null>((resolve) => watcher.once('exit', resolve));
      sleeper.kill('SIGKILL');
      expect(await Promise.race([exited, sleep(5000).then(() => 'timeout')])).toBe(0);
    });
  },
);
