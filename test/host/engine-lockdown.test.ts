// Every lock-down field of the spec takes effect, as the checker sees it from
// inside a real container built by the standalone agent (root, no VM).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Spec } from '../../oci/spec.js';
import { AgentClient } from '../../runtime/src/sandbox/agent-client.js';
import { isRoot, type StandaloneAgent } from '../support/agent-process.js';
import { startAgentFixture, stopAgentFixture } from '../support/agent-fixture.js';
import { busyboxMissing } from '../support/busybox.js';
import { cgroup2Root, privateCgroup2Root, removePrivateCgroup2Root } from '../support/cgroup.js';
import { checkerMissing, makeCheckerRootfs, parseChecker } from '../support/checker.js';
import { lockdownSpec, usernsSpec } from '../support/lockdown.js';
import { dockerLikeProfile, dockerLikeProfileMissing } from '../support/docker-seccomp.js';
import { collect, runSpec } from '../support/engine.js';
import { testSpec } from '../support/spec.js';

const skip = !isRoot ? 'needs root' : (busyboxMissing() ?? checkerMissing());

describe.skipIf(skip !== undefined)(
  `lock-down fields take effect${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let agent: StandaloneAgent;
    let client: AgentClient;
    let rootfs: string;
    let out: Map<string, string>;
    let raw: string;
    let cgroupRoot: string | undefined;
    let n = 0;
    const nextId = (): string => `l${++n}-${process.pid}`;

    beforeAll(async () => {
      // runc spec's default resources (a deny-all device rule) need a cgroup.
      cgroupRoot = privateCgroup2Root('lockdown');
      ({ agent, client, rootfs } = await startAgentFixture(
        makeCheckerRootfs,
        cgroupRoot === undefined ? {} : { KAPSEL_CGROUP_ROOT: cgroupRoot },
      ));
      const r = await runSpec(client, nextId(), lockdownSpec(rootfs));
      expect(r.stderr).toBe('');
      expect(r.exit).toEqual({ exitCode: 0, signal: 0 });
      raw = r.stdout;
      out = parseChecker(raw);
    });

    afterAll(async () => {
      await stopAgentFixture({ agent, client, rootfs });
      removePrivateCgroup2Root(cgroupRoot);
    });

    it('switches to uid, gid, additional gids and umask', () => {
      expect(out.get('uid')).toBe('1000');
      expect(out.get('gid')).toBe('1000');
      expect(out.get('groups')).toBe('10 20');
      expect(out.get('umask')).toBe('0027');
    });

    it('sets all five capability sets', () => {
      // Bounding: CHOWN(0) KILL(5) SETUID(7) NET_BIND_SERVICE(10). After
      // execve as non-root, permitted and effective are the ambient set.
      expect(out.get('CapBnd')).toBe('00000000000004a1');
      expect(out.get('CapInh')).toBe('0000000000000400');
      expect(out.get('CapAmb')).toBe('0000000000000400');
      expect(out.get('CapPrm')).toBe('0000000000000400');
      expect(out.get('CapEff')).toBe('0000000000000400');
    });

    it('sets no_new_privs and loads the seccomp filter', () => {
      expect(out.get('NoNewPrivs')).toBe('1');
      expect(out.get('Seccomp')).toBe('2');
      // mkdir and mkdirat fail with the profile's errnoRet (EOPNOTSUPP).
      expect(out.get('mkdir')).toBe('/tmp/x errno 95');
    });

    it('sets rlimits and oom_score_adj', () => {
      const limits = parseChecker(raw, 2);
      expect(limits.get('rlimit NOFILE')).toBe('321 654');
      expect(limits.get('rlimit CORE')).toBe('0 unlimited');
      expect(out.get('oom')).toBe('123');
    });

    it('masks paths and makes paths read-only', () => {
      const access = parseChecker(raw, 2);
      expect(access.get('access /rw-dir')).toBe('r=1 w=0');
      expect(access.get('access /open-dir')).toBe('r=1 w=1');
      expect(raw).toContain('masked-file-content=\n');
      expect(raw).toContain('masked-dir-listing=\n');
      // Masked by /dev/null: empty; the original is untouched.
      expect(readFileSync(join(rootfs, 'secret-file'), 'utf8')).toBe('secret\n');
    });

    it('writes sysctls in the container namespaces only', () => {
      const s = parseChecker(raw, 2);
      expect(s.get('sysctl kernel.shmmax')).toBe('12345678');
      expect(s.get('sysctl net.ipv4.ip_forward')).toBe('1');
      expect(readFileSync('/proc/sys/kernel/shmmax', 'utf8').trim()).not.toBe('12345678');
    });

    it('creates linux.devices with mode and owner', () => {
      const s = parseChecker(raw, 2);
      expect(s.get('stat /dev/mydev')).toBe('c 1 3 0640 1000 20');
      expect(s.get('stat /dev/null')).toBe('c 1 3 0666 0 0');
      expect(s.get('stat /dev/ptmx')).toBe('l 0 0 0777 0 0');
    });

    it('applies rootfsPropagation to the root mount', () => {
      const rootLine = raw.split('\n').find((l) => l.split(' ')[4] === '/');
      expect(rootLine).toBeDefined();
      // rprivate: no shared:/master: tags (the default, rslave, has master:).
      expect(rootLine).not.toMatch(/ (shared|master):/);
    });

    it.skipIf(cgroup2Root === undefined)(
      `runs runc spec's default config: every mount type, its caps, rlimit and masks${cgroup2Root === undefined ? ' (skipped: no cgroup v2 mount for its device rules)' : ''}`,
      async () => {
        const spec = JSON.parse(
          readFileSync(new URL('../../rootfs/default-spec.json', import.meta.url), 'utf8'),
        ) as Spec;
        spec.root = { path: rootfs, readonly: true };
        if (spec.process) {
          spec.process.args = [
            'sh',
            '-c',
            'checker mounts; checker caps; checker rlimits; checker status NoNewPrivs; checker read /proc/keys; echo end-of-keys; checker access /proc/sys/kernel/hostname /tmp',
          ];
        }
        const r = await runSpec(client, nextId(), spec);
        expect(r.stderr).toBe('');
        expect(r.exit).toEqual({ exitCode: 0, signal: 0 });
        const mounts = new Map(
          r.stdout
            .split('\n')
            .filter((l) => l.includes(' - '))
            .map((l) => [l.split(' ')[4], l.split(' - ')[1]?.split(' ')[0]]),
        );
        expect(Object.fromEntries(mounts)).toMatchObject({
          '/proc': 'proc',
          '/dev': 'tmpfs',
          '/dev/pts': 'devpts',
          '/dev/shm': 'tmpfs',
          '/dev/mqueue': 'mqueue',
          '/sys': 'sysfs',
          '/sys/fs/cgroup': 'cgroup2',
        });
        const o = parseChecker(r.stdout);
        // AUDIT_WRITE(29) KILL(5) NET_BIND_SERVICE(10)
        expect(o.get('CapBnd')).toBe('0000000020000420');
        expect(o.get('CapEff')).toBe('0000000020000420');
        expect(parseChecker(r.stdout, 2).get('rlimit NOFILE')).toBe('1024 1024');
        expect(o.get('NoNewPrivs')).toBe('1');
        // maskedPaths: /proc/keys reads as /dev/null (empty); readonlyPaths
        // and root.readonly.
        expect(r.stdout).toContain('NoNewPrivs 1\nend-of-keys\n');
        expect(r.stdout).toMatch(/ \/proc\/keys .* - tmpfs /);
        const access = parseChecker(r.stdout, 2);
        expect(access.get('access /proc/sys/kernel/hostname')).toBe('r=1 w=0');
        expect(access.get('access /tmp')).toBe('r=1 w=0');
      },
    );

    it('pivots with a shared rootfsPropagation, as runc makes the rootfs parent private', async () => {
      const spec = testSpec(rootfs, ['sh', '-c', 'checker mounts']);
      spec.linux = { ...spec.linux, rootfsPropagation: 'rshared' };
      const r = await runSpec(client, nextId(), spec);
      expect(r.stderr).toBe('');
      const rootLine = r.stdout.split('\n').find((l) => l.split(' ')[4] === '/');
      expect(rootLine).toMatch(/ shared:\d+ /);
    });

    it.skipIf(dockerLikeProfileMissing() !== undefined)(
      `loads a Docker-style default seccomp profile${dockerLikeProfileMissing() ?? ''}`,
      async () => {
        const spec = testSpec(rootfs, [
          'sh',
          '-c',
          'checker status Seccomp; mount -t tmpfs t /tmp; echo mount=$?; (sleep 0 &); wait; echo forked=$?',
        ]);
        spec.linux = { ...spec.linux, seccomp: dockerLikeProfile() };
        const r = await runSpec(client, nextId(), spec);
        expect(r.exit).toEqual({ exitCode: 0, signal: 0 });
        expect(r.stdout).toContain('Seccomp 2\n');
        // mount is not in the list: the default action, EPERM (root with
        // every capability could mount otherwise).
        expect(r.stderr).toMatch(/mount: .*(Operation not permitted|permission denied)/i);
        expect(r.stdout).toContain('mount=1\n');
        // fork goes through clone without CLONE_NEW* flags: allowed.
        expect(r.stdout).toContain('forked=0');
      },
    );

    it('runs in a user namespace with the uid/gid mappings', async () => {
      const r = await runSpec(
        client,
        nextId(),
        usernsSpec(
          rootfs,
          'checker uidmap; checker gidmap; checker id; checker caps; cat /proc/self/status | grep ^Uid',
        ),
      );
      expect(r.stderr).toBe('');
      expect(r.exit).toEqual({ exitCode: 0, signal: 0 });
      expect(r.stdout).toMatch(/^\s*0\s+100000\s+65536\n\s*0\s+100000\s+65536\n/);
      const o = parseChecker(r.stdout);
      expect(o.get('uid')).toBe('0');
      expect(o.get('CapEff')).toBe('000001ffffffffff');
      // The same process seen from the agent: host uid 100000.
      const id = nextId();
      await client.createContainer({
        containerId: id,
        ociSpecJson: JSON.stringify(usernsSpec(rootfs, 'sleep 100')),
      });
      await client.startContainer(id);
      const [pid] = await client.listProcesses(id);
      const uidLine = readFileSync(`/proc/${pid}/status`, 'utf8')
        .split('\n')
        .find((l) => l.startsWith('Uid:'));
      expect(uidLine?.split(/\s+/)[1]).toBe('100000');
      // An exec joins the user namespace too, and its terminal belongs to
      // the exec user as the container sees it.
      await client.execProcess(
        id,
        'e',
        JSON.stringify({
          user: { uid: 7, gid: 8 },
          args: ['sh', '-c', 'checker uidmap; checker id; checker fdstat 0; tty'],
          env: ['PATH=/bin'],
          cwd: '/',
          terminal: true,
        }),
      );
      const out = collect(client.readOutput('stdout', id, 'e'));
      expect(await client.waitProcess(id, 'e')).toEqual({ exitCode: 0, signal: 0 });
      const text = (await out).replaceAll('\r', '');
      expect(text).toMatch(/^\s*0\s+100000\s+65536\n/);
      expect(parseChecker(text).get('uid')).toBe('7');
      expect(text).toMatch(/^fdstat 0 c \d+ \d+ 0\d+ 7 8$/m);
      // A node of the container's own devpts, even from the user namespace.
      expect(text).toMatch(/^\/dev\/pts\/\d+$/m);
      await client.removeContainer(id);
    });
  },
);
