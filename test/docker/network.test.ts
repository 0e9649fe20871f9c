import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  DOCKERD,
  DockerDaemon,
  engineMissing,
  IMAGE,
  PODMAN,
  PODMAN_ULIMITS,
  PodmanStore,
  RUNC,
} from '../support/engines.js';
import { KAPSEL, processesMentioning, vmMissing } from '../support/kapsel-cli.js';
import { hostNetworkSnapshot, TestNetns } from '../support/netns.js';

const skip = engineMissing(DOCKERD, '/usr/bin/docker', '/usr/bin/curl') ?? vmMissing();

/** A busybox web server: serves `text` at / on `port`. */
const httpd = (text: string, port = 80): string[] => [
  'sh',
  '-c',
  `mkdir -p /www && echo ${text} > /www/index.html && exec httpd -f -p ${port} -h /www`,
];

/**
 * An HTTP GET with busybox nc (its wget crashes resolving even a numeric
 * address, DESIGN says), retried while the server starts.
 */
const get = (host: string, port = 80): string =>
  `(for i in $(seq 1 50); do r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${host} ${port} 2>/dev/null | tail -1) && [ -n "$r" ] && { echo "$r"; exit 0; }; sleep 0.2; done; exit 1)`;

/**
 * Docker's default networking (its bridge, iptables NAT, docker-proxy, the
 * embedded DNS of user-defined networks) with dockerd inside a namespace of
 * the test's own, and an "outside" host in another, joined by a veth. Every
 * check runs with runc too, which proves the check right.
 */
describe.skipIf(skip !== undefined)(`docker networking${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let engineNs: TestNetns;
  let outside: TestNetns;
  let d: DockerDaemon;
  let www = '';
  let before = '';
  let outsideServer: ChildProcess | undefined;
  beforeAll(async () => {
    before = hostNetworkSnapshot();
    engineNs = TestNetns.create('kte');
    outside = TestNetns.create('kto');
    engineNs.link(outside, 'up0', '10.250.0.1/24', 'out0', '10.250.0.2/24');
    www = mkdtempSync('/tmp/kwww-');
    writeFileSync(join(www, 'index.html'), 'outside-page\n');
    outsideServer = spawn(
      'nsenter',
      [`--net=${outside.path}`, '--', 'busybox', 'httpd', '-f', '-p', '8081', '-h', www],
      { stdio: 'ignore' },
    );
    d = await DockerDaemon.start({ netns: engineNs });
    await d.importImage();
  });
  afterAll(async () => {
    const ids = (await d.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
    if (ids.length > 0) await d.docker(['rm', '-f', ...ids]);
    await d.docker(['network', 'rm', 'knet']);
    await d.stop();
    outsideServer?.kill();
    outside.remove();
    engineNs.remove();
    rmSync(www, { recursive: true, force: true });
    expect(processesMentioning('kapsel __')).toEqual([]);
    expect(hostNetworkSnapshot()).toBe(before);
  });
  afterEach(async () => {
    const ids = (await d.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
    if (ids.length > 0) await d.docker(['rm', '-f', ...ids]);
    // Nothing of kapsel's stays in the engine's namespace either.
    expect(engineNs.ip(['-br', 'link'])).not.toContain('_kapsel');
    expect(hostNetworkSnapshot()).toBe(before);
  });

  describe.each(['runc', 'kapsel'])('with %s', (runtime) => {
    const run = (...args: string[]): ReturnType<DockerDaemon['docker']> =>
      d.docker(['run', '--runtime', runtime, ...args]);

    it('publishes a port: a GET to 127.0.0.1:18080 in the engine namespace returns the page', async () => {
      const r = await run('-d', '-p', '18080:80', IMAGE, ...httpd(`page-${runtime}`));
      expect(r.stderr).toBe('');
      let body = '';
      for (let i = 0; i < 100 && body === ''; i++) {
        try {
          body = engineNs.run(['curl', '-sf', '--max-time', '3', 'http://127.0.0.1:18080/']);
        } catch {
          await new Promise((res) => setTimeout(res, 300));
        }
      }
      expect(body).toBe(`page-${runtime}\n`);
    });

    it('reaches another container of the default bridge by IP, and the outside through NAT', async () => {
      expect((await run('-d', '--name', `srv-${runtime}`, IMAGE, ...httpd('bridge-ok'))).code).toBe(
        0,
      );
      const ip = (
        await d.docker(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', `srv-${runtime}`])
      ).stdout.trim();
      expect(ip).toMatch(/^172\.17\./);
      const r = await run('--rm', IMAGE, 'sh', '-c', `${get(ip)} && ${get('10.250.0.2', 8081)}`);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('bridge-ok\noutside-page\n');
    });

    it('--network none: only lo, up, and a TCP round trip over 127.0.0.1', async () => {
      const r = await run(
        '--rm',
        '--network',
        'none',
        IMAGE,
        'sh',
        '-c',
        'ls /sys/class/net; cat /sys/class/net/lo/flags; sleep 3 | nc -l -p 8080 & sleep 1; echo hi | nc -w 1 127.0.0.1 8080; wait',
      );
      expect(r.stdout).toBe('lo\n0x9\nhi\n');
    });
  });

  it('--network host is refused by kapsel with the reason, and runs with runc', async () => {
    const runc = await d.docker([
      'run',
      '--rm',
      '--runtime',
      'runc',
      '--network',
      'host',
      IMAGE,
      'true',
    ]);
    expect(runc.code).toBe(0);
    const k = await d.docker([
      'run',
      '--rm',
      '--runtime',
      'kapsel',
      '--network',
      'host',
      IMAGE,
      'true',
    ]);
    expect(k.code).not.toBe(0);
    expect(k.stderr).toContain("cannot share the host's network namespace (--network host)");
  });

  it('resolves names on a user-defined network through the embedded DNS, kapsel and runc alike, both ways', async () => {
    expect((await d.docker(['network', 'create', 'knet'])).code).toBe(0);
    for (const runtime of ['runc', 'kapsel']) {
      const r = await d.docker([
        'run',
        '-d',
        '--runtime',
        runtime,
        '--network',
        'knet',
        '--name',
        `web-${runtime}`,
        IMAGE,
        ...httpd(`named-${runtime}`),
      ]);
      expect(r.code, `${runtime}: ${r.stderr}`).toBe(0);
    }
    const byName = (peer: string): string =>
      `ip=$(nslookup ${peer} 127.0.0.11 | awk '/^Address/ && !/127.0.0.11/ {print $NF}' | tail -1) && ${get('$ip')}`;
    for (const [client, server] of [
      ['kapsel', 'runc'],
      ['runc', 'kapsel'],
      ['kapsel', 'kapsel'],
    ] as const) {
      const r = await d.docker([
        'run',
        '--rm',
        '--runtime',
        client,
        '--network',
        'knet',
        IMAGE,
        'sh',
        '-c',
        `grep nameserver /etc/resolv.conf; ${byName(`web-${server}`)}`,
      ]);
      expect(r.stdout, `${client} -> ${server}: ${r.stderr}`).toBe(
        `nameserver 127.0.0.11\nnamed-${server}\n`,
      );
    }
    // docker network connect: a running container gets a second interface that works.
    const webIp = (
      await d.docker(['inspect', '-f', '{{.NetworkSettings.Networks.knet.IPAddress}}', 'web-runc'])
    ).stdout.trim();
    for (const runtime of ['runc', 'kapsel']) {
      const late = `late-${runtime}`;
      expect(
        (
          await d.docker([
            'run',
            '-d',
            '--runtime',
            runtime,
            '--name',
            late,
            IMAGE,
            'sleep',
            '1000',
          ])
        ).code,
      ).toBe(0);
      expect((await d.docker(['network', 'connect', 'knet', late])).code).toBe(0);
      const r = await d.docker([
        'exec',
        late,
        'sh',
        '-c',
        `${get(webIp)}; ip -o -4 addr show | awk '{print $2}'`,
      ]);
      expect(r.stdout, `${runtime}: ${r.stderr}`).toBe('named-runc\nlo\neth0\neth1\n');
    }
  });
});

const skipPodman = engineMissing(PODMAN, '/usr/bin/curl') ?? vmMissing();

/** Podman's default network (CNI bridge and portmap), inside a test namespace. */
describe.skipIf(skipPodman !== undefined)(
  `podman networking${skipPodman ? ` (skipped: ${skipPodman})` : ''}`,
  () => {
    let ns: TestNetns;
    let store: PodmanStore;
    let before = '';
    beforeAll(async () => {
      before = hostNetworkSnapshot();
      ns = TestNetns.create('ktp');
      store = await PodmanStore.create({ netns: ns });
    });
    afterAll(async () => {
      await store.remove();
      ns.remove();
      expect(processesMentioning('kapsel __')).toEqual([]);
      expect(hostNetworkSnapshot()).toBe(before);
    });

    it.each([
      ['runc', RUNC],
      ['kapsel', KAPSEL],
    ])('with %s: -p publishes the port and a GET returns the page', async (name, binary) => {
      const r = await store.podman(
        'run',
        '-d',
        '--runtime',
        binary,
        ...PODMAN_ULIMITS,
        '--name',
        `web-${name}`,
        '-p',
        '18081:80',
        IMAGE,
        ...httpd(`podman-${name}`),
      );
      expect(r.stderr).toBe('');
      expect(await ns.get('http://127.0.0.1:18081/')).toBe(`podman-${name}\n`);
      expect((await store.podman('rm', '-f', `web-${name}`)).code).toBe(0);
      expect(ns.ip(['-br', 'link'])).not.toContain('_kapsel');
      expect(hostNetworkSnapshot()).toBe(before);
    });
  },
);
