// Issue 10's inputs that need a real VM, each next to runc on the same
// bundle: runc's own default capabilities (ambient without inheritable), a
// relative bind source, no rlimits (the caller's), kill with signal 0, and
// Docker's zero-filled update. kapsel's bundle adds what runc cannot run on
// this host (a cgroup v1 hybrid without SELinux/AppArmor): the v1-only
// resources, whose rule comes from runc's fs2 source, and LSM labels.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import type { Spec } from '../../oci/spec.js';
import { defaultSpec } from '../../runtime/src/commands/spec.js';
import { RUNC, runCommand } from '../support/engines.js';
import { DEFAULT_BUNDLE, kapsel, startKapsel, vmMissing } from '../support/kapsel-cli.js';

const skip = vmMissing();

/** What the container prints, then it waits. */
const SCRIPT =
  'cat /proc/self/limits; grep -E "^Cap(Amb|Inh|Eff)" /proc/self/status; cat /root/x; echo ready; exec sleep 1000';

const MIB80 = 80 * 1024 * 1024;

/** `docker update --memory 80m --memory-swap 80m` as containerd hands it to the runtime. */
const DOCKER_UPDATE = {
  memory: { limit: MIB80, reservation: 0, swap: MIB80, kernel: 0, kernelTCP: 0 },
  cpu: {
    shares: 0,
    quota: 0,
    period: 0,
    realtimeRuntime: 0,
    realtimePeriod: 0,
    cpus: '',
    mems: '',
  },
  blockIO: { weight: 0 },
  pids: { limit: 0 },
};

/** `docker update --restart always`: every field unset. */
const DOCKER_RESTART = {
  memory: { limit: 0, reservation: 0, swap: 0, kernel: 0, kernelTCP: 0 },
  cpu: {
    shares: 0,
    quota: 0,
    period: 0,
    realtimeRuntime: 0,
    realtimePeriod: 0,
    cpus: '',
    mems: '',
  },
  blockIO: { weight: 0 },
  pids: { limit: 0 },
};

describe.skipIf(skip !== undefined)(
  `spec compatibility in a VM, runc side by side${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const work = mkdtempSync(join(tmpdir(), 'kapsel-speccompat-vm-'));
    const root = join(work, 'kapsel-root');
    const runcRoot = join(work, 'runc-root');
    afterAll(async () => {
      await runCommand(RUNC, ['--root', runcRoot, 'delete', '-f', 'sc-runc']);
      await kapsel(['--root', root, 'delete', '--force', 'sc-kapsel']);
      rmSync(work, { recursive: true, force: true });
    });

    /** runc's default spec, on the default rootfs, with a relative bind source "data". */
    function commonBundle(name: string): string {
      const dir = join(work, name);
      mkdirSync(join(dir, 'data'), { recursive: true });
      writeFileSync(join(dir, 'data', 'x'), 'from-the-bundle\n');
      const spec: Spec = defaultSpec();
      spec.root = { path: join(DEFAULT_BUNDLE, 'rootfs'), readonly: true };
      spec.hostname = 'sc';
      if (spec.process) {
        spec.process.terminal = false;
        spec.process.args = ['sh', '-c', SCRIPT];
        delete spec.process.rlimits; // the caller's, as with Docker
      }
      spec.mounts?.push({
        destination: '/root',
        type: 'bind',
        source: 'data',
        options: ['rbind', 'ro'],
      });
      // runc on this cgroup v1 host: no cgroup namespace of v2's kind to ask for.
      const namespaces = spec.linux?.namespaces;
      if (spec.linux && namespaces) {
        spec.linux.namespaces = namespaces.filter((n) => n.type !== 'cgroup');
      }
      spec.linux = { ...spec.linux, resources: { ...spec.linux?.resources, pids: { limit: 100 } } };
      writeFileSync(join(dir, 'config.json'), JSON.stringify(spec, null, 2));
      return dir;
    }

    function kapselBundle(): string {
      const dir = commonBundle('kapsel-bundle');
      const spec = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Spec;
      if (spec.process) {
        spec.process.apparmorProfile = 'docker-default';
        spec.process.selinuxLabel = 'system_u:system_r:container_t:s0';
      }
      if (spec.linux) {
        spec.linux.mountLabel = 'system_u:object_r:container_file_t:s0';
        spec.linux.resources = {
          ...spec.linux.resources,
          memory: { kernel: 1 << 26, kernelTCP: 1 << 20, swappiness: 10, disableOOMKiller: true },
          cpu: { realtimeRuntime: 1000, realtimePeriod: 100000 },
          blockIO: { leafWeight: 100 },
          network: { classID: 7 },
        };
      }
      writeFileSync(join(dir, 'config.json'), JSON.stringify(spec, null, 2));
      return dir;
    }

    async function until(read: () => string, text: string): Promise<string> {
      for (let i = 0; i < 1200; i++) {
        const s = read();
        if (s.includes(text)) return s;
        await sleep(250);
      }
      throw new Error(`no ${JSON.stringify(text)} in ${read()}`);
    }

    it("runs runc's default caps, a bundle-relative bind and the caller's rlimits as runc; kill 0 and Docker's updates work", async () => {
      // A directory with its own data/: the CLI's cwd must not be what is bound.
      // (/root: an existing mount point, so the shared rootfs is left as it was.)
      const cwd = join(work, 'cwd');
      mkdirSync(join(cwd, 'data'), { recursive: true });
      writeFileSync(join(cwd, 'data', 'x'), 'from-the-cwd\n');

      // runc, detached, its output in a file.
      const rb = commonBundle('runc-bundle');
      const runcOut = join(work, 'runc.out');
      const runc = spawn(
        'sh',
        [
          '-c',
          `exec ${RUNC} --root ${runcRoot} run -d --bundle ${rb} sc-runc >${runcOut} 2>${runcOut}.err`,
        ],
        { cwd },
      );
      await new Promise((resolve) => runc.on('exit', resolve));
      const runcText = await until(() => readFileSync(runcOut, 'utf8'), 'ready');

      const log = join(work, 'kapsel.log');
      const run = startKapsel(
        ['--root', root, '--log', log, 'run', '--bundle', kapselBundle(), 'sc-kapsel'],
        cwd,
      );
      let out = '';
      run.child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const kapselText = await until(() => out, 'ready');

      // The same limits as runc's container: both inherit this test's.
      const limits = (s: string): string =>
        s
          .split('\n')
          .filter((l) => l.startsWith('Max'))
          .join('\n');
      expect(limits(kapselText)).toBe(limits(runcText));
      expect(limits(kapselText)).toBe(limits(readFileSync('/proc/self/limits', 'utf8')));
      // Ambient not raised (not inheritable), the rest as runc: it warns and goes on.
      const caps = (s: string): string[] => s.split('\n').filter((l) => l.startsWith('Cap'));
      expect(caps(kapselText)).toEqual(caps(runcText));
      expect(caps(kapselText)).toContain('CapAmb:\t0000000000000000');
      expect(kapselText).toContain('from-the-bundle\n');
      expect(runcText).toContain('from-the-bundle\n');
      // runc 1.1's capability package drops the failed raise silently; runc
      // 1.2+ warns "can't raise ambient capability", as kapsel does.

      const logText = readFileSync(log, 'utf8');
      for (const c of ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE']) {
        expect(logText).toContain(`can't raise ambient capability ${c}: operation not permitted`);
      }
      for (const f of [
        'memory.kernel',
        'memory.kernelTCP',
        'memory.swappiness',
        'memory.disableOOMKiller',
        'cpu.realtimeRuntime',
        'cpu.realtimePeriod',
        'blockIO.leafWeight',
        'network.classID',
      ]) {
        expect(logText).toContain(`linux.resources.${f} is ignored`);
      }
      const lsm = logText.split('\n').filter((l) => l.includes('AppArmor or SELinux'));
      expect(lsm).toHaveLength(1);
      expect(lsm[0]).toContain('process.apparmorProfile');
      expect(lsm[0]).toContain('process.selinuxLabel');
      expect(lsm[0]).toContain('linux.mountLabel');

      // kill 0: a liveness check, both accept it.
      expect((await runCommand(RUNC, ['--root', runcRoot, 'kill', 'sc-runc', '0'])).code).toBe(0);
      const k0 = await kapsel(['--root', root, 'kill', 'sc-kapsel', '0']);
      expect(k0.stderr).toBe('');
      expect(k0.code).toBe(0);

      // Docker's updates, as containerd hands them over (unset fields zero).
      for (const [payload, rcode] of [
        [DOCKER_UPDATE, 0],
        [DOCKER_RESTART, 0],
      ] as const) {
        const r = await runCommand(
          RUNC,
          ['--root', runcRoot, 'update', '--resources', '-', 'sc-runc'],
          JSON.stringify(payload),
        );
        expect(r.code).toBe(rcode);
        const k = await kapsel(
          ['--root', root, 'update', '--resources', '-', 'sc-kapsel'],
          JSON.stringify(payload),
        );
        expect(k.stderr).toBe('');
        expect(k.code).toBe(rcode);
      }
      const inside = await kapsel([
        '--root',
        root,
        'exec',
        'sc-kapsel',
        'cat',
        '/sys/fs/cgroup/memory.max',
        '/sys/fs/cgroup/memory.swap.max',
        '/sys/fs/cgroup/pids.max',
      ]);
      // 80m, no swap beyond it, and the pids limit untouched by the zeros.
      expect(inside.stdout).toBe(`${MIB80}\n0\n100\n`);
      const runcInside = await runCommand(RUNC, [
        '--root',
        runcRoot,
        'exec',
        'sc-runc',
        'sh',
        '-c',
        'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max',
      ]);
      expect(runcInside.stdout).toBe(`${MIB80}\n100\n`);

      expect((await kapsel(['--root', root, 'kill', 'sc-kapsel', 'KILL'])).code).toBe(0);
      await run.done;
    });
  },
);
