import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Process, Spec, State } from '../../oci/spec.js';
import { vmDirOf } from '../../runtime/src/sandbox/vm-dir.js';
import { engineMissing, RUNC } from '../support/engines.js';
import {
  kapsel,
  kapselToFiles,
  makeBundle,
  processesMentioning,
  removeBundles,
  vmMissing,
} from '../support/kapsel-cli.js';

const skip = vmMissing() ?? engineMissing(RUNC);
const MiB = 1024 * 1024;

/**
 * The host cgroup at cgroupsPath (Kata's sandbox_cgroup_only): made where
 * runc makes it, holding the VM's host processes with the container's
 * limits plus the VM's own use, gone after delete. Paths are relative, so
 * runc and kapsel both nest them below this test's own cgroups.
 */
describe.skipIf(skip !== undefined)(
  `host cgroup at cgroupsPath${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const root = mkdtempSync(join(tmpdir(), 'kapsel-root-'));
    const work = mkdtempSync(join(tmpdir(), 'kapsel-hcg-'));
    const runcRoot = mkdtempSync(join(tmpdir(), 'kapsel-runc-'));
    const parent = `kapsel-hcg-${process.pid}`;
    afterAll(() => {
      // runc leaves the parents of its cgroup, kapsel too (as runc).
      for (const d of cgroupDirs(parent)) rmdirSync(d);
      rmSync(root, { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
      rmSync(runcRoot, { recursive: true, force: true });
      removeBundles();
    });

    const bundle = (cgroupsPath: string, args: string[]): string =>
      makeBundle((spec) => {
        spec.process = { ...requireProcess(spec), args };
        spec.linux = {
          ...spec.linux,
          cgroupsPath,
          resources: {
            ...spec.linux?.resources,
            memory: { limit: 64 * MiB },
            cpu: { quota: 50_000, period: 100_000 },
          },
        };
      });

    it('exists where runc makes it while the container lives, holds QEMU and the shim, and goes with delete', async () => {
      const path = `${parent}/c`;
      // runc: the directories it makes for the same cgroupsPath.
      const b = bundle(path, ['sleep', '100']);
      execFileSync(RUNC, ['--root', runcRoot, 'create', '--bundle', b, 'hcg-runc'], {
        stdio: 'ignore',
      });
      const runcDirs = cgroupDirs(path);
      execFileSync(RUNC, ['--root', runcRoot, 'delete', '--force', 'hcg-runc'], {
        stdio: 'ignore',
      });
      expect(runcDirs.length).toBeGreaterThan(0);
      expect(cgroupDirs(path)).toEqual([]);

      const id = 'hcg-kapsel';
      const r = await kapselToFiles(['--root', root, 'run', '-d', '--bundle', b, id], work);
      expect(r.stderr()).toBe('');
      expect(r.code).toBe(0);
      try {
        expect(cgroupDirs(path)).toEqual(runcDirs);
        const qemu = processesMentioning(vmDirOf(root, id))
          .filter((p) => p.includes('qemu-system'))
          .map((p) => Number(p.split(':')[0]));
        expect(qemu).toHaveLength(1);
        const state = JSON.parse((await kapsel(['--root', root, 'state', id])).stdout) as State;
        // An exec'd process's shim too, as runc runs exec'd processes in the cgroup.
        const pidFile = join(work, 'exec.pid');
        const exec = await kapselToFiles(
          ['--root', root, 'exec', '-d', '--pid-file', pidFile, id, 'sleep', '30'],
          work,
        );
        expect(exec.code).toBe(0);
        const execPid = Number(readFileSync(pidFile, 'utf8'));
        for (const dir of runcDirs) {
          const procs = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').map(Number);
          expect(procs).toContain(qemu[0]);
          expect(procs).toContain(state.pid);
          expect(procs).toContain(execPid);
        }
        const memory = runcDirs.find((d) => d.includes('/memory/'));
        if (memory !== undefined) {
          const limit = Number(readFileSync(join(memory, 'memory.limit_in_bytes'), 'utf8'));
          const usage = Number(readFileSync(join(memory, 'memory.usage_in_bytes'), 'utf8'));
          // The container's 64 MiB on top of what the booted VM holds.
          expect(limit).toBeGreaterThan(64 * MiB + usage / 2);
          console.log(`host cgroup: usage ${usage / MiB} MiB, limit ${limit / MiB} MiB`);
        }
        const cpu = runcDirs.find((d) => /\/cpu[,/]/.test(d));
        if (cpu !== undefined) {
          expect(readFileSync(join(cpu, 'cpu.cfs_quota_us'), 'utf8').trim()).toBe('50000');
        }
      } finally {
        expect((await kapsel(['--root', root, 'delete', '--force', id])).code).toBe(0);
      }
      expect(cgroupDirs(path)).toEqual([]);
      expect(processesMentioning(vmDirOf(root, id))).toEqual([]);
    });

    it('is removed when create fails after the VM booted', async () => {
      const path = `${parent}/failed`;
      const b = bundle(path, ['/no/such/binary']);
      const r = await kapselToFiles(['--root', root, 'create', '--bundle', b, 'hcg-failed'], work);
      expect(r.code).toBe(1);
      expect(cgroupDirs(path)).toEqual([]);
      expect(existsSync(join(root, 'hcg-failed'))).toBe(false);
    });
  },
);

/** Every directory named `path` below a cgroup hierarchy's mount point, sorted. */
function cgroupDirs(path: string): string[] {
  const out = execFileSync(
    'find',
    ['/sys/fs/cgroup', '-mindepth', '1', '-maxdepth', '6', '-type', 'd', '-path', `*/${path}`],
    {
      encoding: 'utf8',
    },
  );
  return out
    .split('\n')
    .filter((l) => l !== '')
    .sort()
    .reverse();
}

function requireProcess(spec: Spec): Process {
  if (spec.process === undefined) throw new Error('default spec has no process');
  return spec.process;
}
