// The engine inside a real guest: one VM booted once (QEMU under TCG takes
// seconds) serves a group of containers whose checker reports what they see:
// lock-down fields, a user namespace, exec with a terminal, refusals and
// symlink confinement, all on the guest kernel over virtio-fs.
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Spec } from '../../oci/spec.js';
import { Sandbox } from '../../runtime/src/sandbox/boot.js';
import { checkerMissing, makeCheckerRootfs, parseChecker } from '../support/checker.js';
import { collect, failureOf, type RunResult } from '../support/engine.js';
import { vmMissing } from '../support/kapsel-cli.js';
import { lockdownSpec, usernsSpec } from '../support/lockdown.js';
import { testSpec } from '../support/spec.js';
import { rootfsShareSpec } from '../support/guest.js';

const skip = vmMissing() ?? checkerMissing();

describe.skipIf(skip !== undefined)(
  `the engine in a real VM${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'kapsel-vm-engine-'));
    let rootfs: string;
    let sandbox: Sandbox;
    let n = 0;
    const nextId = (): string => `v${++n}`;

    beforeAll(async () => {
      rootfs = makeCheckerRootfs();
      symlinkSync('/', join(rootfs, 'to-root'));
      symlinkSync('..', join(rootfs, 'to-parent'));
      sandbox = await Sandbox.start({ stateDir, shareDir: rootfs, log: pino({ level: 'warn' }) });
    });

    afterAll(async () => {
      await sandbox.stop();
      rmSync(stateDir, { recursive: true, force: true });
      rmSync(rootfs, { recursive: true, force: true });
    });

    async function create(id: string, spec: Spec): Promise<void> {
      const guest = rootfsShareSpec(id, spec);
      await sandbox.agent.createContainer({
        containerId: id,
        ociSpecJson: JSON.stringify(guest.spec),
        storages: guest.storages,
      });
    }

    async function run(spec: Spec): Promise<RunResult> {
      const id = nextId();
      await create(id, spec);
      try {
        const stdout = collect(sandbox.agent.readOutput('stdout', id));
        const stderr = collect(sandbox.agent.readOutput('stderr', id));
        await sandbox.agent.startContainer(id);
        const exit = await sandbox.agent.waitProcess(id);
        return { exit, stdout: await stdout, stderr: await stderr };
      } finally {
        await sandbox.agent.removeContainer(id);
      }
    }

    it('applies every lock-down field on the guest kernel', async () => {
      const r = await run(lockdownSpec(rootfs));
      expect(r.stderr).toBe('');
      expect(r.exit).toEqual({ exitCode: 0, signal: 0 });
      const o = parseChecker(r.stdout);
      const two = parseChecker(r.stdout, 2);
      expect([o.get('uid'), o.get('gid'), o.get('groups'), o.get('umask')]).toEqual([
        '1000',
        '1000',
        '10 20',
        '0027',
      ]);
      expect(o.get('CapBnd')).toBe('00000000000004a1');
      expect(o.get('CapEff')).toBe('0000000000000400');
      expect(o.get('CapAmb')).toBe('0000000000000400');
      expect(o.get('NoNewPrivs')).toBe('1');
      expect(o.get('Seccomp')).toBe('2');
      expect(o.get('mkdir')).toBe('/tmp/x errno 95');
      expect(two.get('rlimit NOFILE')).toBe('321 654');
      expect(o.get('oom')).toBe('123');
      expect(two.get('access /rw-dir')).toBe('r=1 w=0');
      expect(r.stdout).toContain('masked-file-content=\n');
      expect(two.get('sysctl kernel.shmmax')).toBe('12345678');
      expect(two.get('stat /dev/mydev')).toBe('c 1 3 0640 1000 20');
    });

    it('runs a user namespace with its mappings', async () => {
      const r = await run(usernsSpec(rootfs, 'checker uidmap; checker id'));
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/^\s*0\s+100000\s+65536\n/);
      expect(parseChecker(r.stdout).get('uid')).toBe('0');
    });

    it('execs into the container namespaces with a terminal that resizes', async () => {
      const id = nextId();
      await create(id, testSpec(rootfs, ['sleep', '1000'], 'vm-exec'));
      await sandbox.agent.startContainer(id);
      const proc = (args: string[], terminal = false): string =>
        JSON.stringify({ user: { uid: 0, gid: 0 }, args, env: ['PATH=/bin'], cwd: '/', terminal });
      await sandbox.agent.execProcess(id, 'plain', proc(['sh', '-c', 'hostname; checker ns']));
      const plain = collect(sandbox.agent.readOutput('stdout', id, 'plain'));
      expect(await sandbox.agent.waitProcess(id, 'plain')).toEqual({ exitCode: 0, signal: 0 });
      expect((await plain).split('\n')[0]).toBe('vm-exec');

      // Born in the container's cgroup, inside its cgroup namespace: the
      // container's process list (its cgroup.procs) has it.
      await sandbox.agent.execProcess(
        id,
        'cg',
        proc(['sh', '-c', 'cat /proc/self/cgroup; sleep 2']),
      );
      const cg = collect(sandbox.agent.readOutput('stdout', id, 'cg'));
      expect((await sandbox.agent.listProcesses(id)).length).toBeGreaterThanOrEqual(2);
      expect(await sandbox.agent.waitProcess(id, 'cg')).toEqual({ exitCode: 0, signal: 0 });
      expect(await cg).toBe('0::/\n');

      await sandbox.agent.execProcess(id, 'tty', proc(['sh', '-c', 'read l; checker tty'], true));
      let out = '';
      const reading = (async () => {
        for await (const c of sandbox.agent.readOutput('stdout', id, 'tty')) out += c.toString();
      })();
      await sandbox.agent.ttyWinResize(id, 42, 142, 'tty');
      await sandbox.agent.writeStdin(id, Buffer.from('go\n'), 'tty');
      expect(await sandbox.agent.waitProcess(id, 'tty')).toEqual({ exitCode: 0, signal: 0 });
      await reading;
      expect(out.replaceAll('\r', '')).toContain('tty 1 rows 42 cols 142');
      expect((await sandbox.agent.listProcesses(id)).length).toBe(1);
      await sandbox.agent.removeContainer(id);
    });

    it('refuses bad specs naming the field', async () => {
      const caps = testSpec(rootfs, ['true']);
      if (caps.process) caps.process.capabilities = { effective: ['CAP_NET_RAWW'] };
      const sc = testSpec(rootfs, ['true']);
      sc.linux = {
        ...sc.linux,
        seccomp: {
          defaultAction: 'SCMP_ACT_ALLOW',
          syscalls: [{ names: ['nosuchcall'], action: 'SCMP_ACT_KILL' }],
        },
      };
      for (const [spec, text] of [
        [caps, 'process.capabilities.effective[0]'],
        [sc, 'unknown syscall `nosuchcall`'],
      ] as const) {
        const err = await failureOf(create(nextId(), spec));
        expect(err?.code).toBe(status.INVALID_ARGUMENT);
        expect(err?.details).toContain(text);
      }
    });

    it('keeps mounts inside the rootfs whatever its symlinks say', async () => {
      const spec = testSpec(rootfs, [
        'sh',
        '-c',
        'ls -d /vm-escape-*; grep -c " /vm-escape-" /proc/self/mountinfo',
      ]);
      spec.mounts = [
        ...(spec.mounts ?? []),
        { destination: '/to-root/vm-escape-a', type: 'tmpfs', source: 'tmpfs' },
        { destination: '/to-parent/vm-escape-b', type: 'tmpfs', source: 'tmpfs' },
      ];
      const r = await run(spec);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('/vm-escape-a\n/vm-escape-b\n2\n');
    });
  },
);
