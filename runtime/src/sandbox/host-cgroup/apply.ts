// The sandbox's cgroup on the host, as Kata's sandbox_cgroup_only keeps one:
// QEMU, virtiofsd, the sandbox process and the shims live in the cgroup at
// the spec's cgroupsPath, so host tools find a container's processes where
// runc would put them and the host bounds the VM as it would the container.
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Spec } from '../../../../oci/spec.js';
import { RuntimeError } from '../../sys/errors.js';
import { dirIn, hierarchiesOf, innerPathOf, ownCgroupsOf } from './path.js';

/** One hierarchy's directory of a sandbox's host cgroup. */
export interface HostCgroupDir {
  path: string;
  version: 1 | 2;
  /** v1: the hierarchy's controllers; v2: those enabled for the directory. */
  controllers: string[];
  /** Made by kapsel (so removed by it); an existing cgroup is only joined. */
  created: boolean;
}

export interface HostCgroup {
  dirs: HostCgroupDir[];
}

/** What the sandbox process is told (vm-dir layout `hostCgroup`). */
export interface HostCgroupPlan {
  cgroup: HostCgroup;
  /** Σ memory.limit of the containers, bytes; the VM's measured use is added. */
  memoryLimitBytes?: number;
}

/**
 * Memory kept for the VM beyond what its cgroup held right after boot plus
 * the containers' limits: room for the guest kernel's and agent's growth
 * and the shims. Measured here (test/vm/host-cgroup.test.ts, TCG, guest of
 * 1 GiB + 64 MiB): 474 MiB charged after boot (QEMU, virtiofsd, sandbox
 * process), 490 MiB with the container running and its shim joined.
 */
export const HOST_MEMORY_MARGIN_BYTES = 128 * 1024 * 1024;

/**
 * Makes the sandbox's cgroup in every hierarchy (runc's cgroupfs manager
 * does the same: each v1 controller, name=systemd, and the unified one on a
 * hybrid host), with the containers' CPU quota as given. Memory is limited
 * later, once the VM's own use is measured (limitMemoryAfterBoot). Errors
 * name the directory and the file.
 */
export async function createHostCgroup(
  spec: Spec,
  id: string,
  systemd: boolean,
): Promise<HostCgroup> {
  const inner = innerPathOf(spec.linux?.cgroupsPath, id, systemd);
  const own = ownCgroupsOf(readFileSync('/proc/self/cgroup', 'utf8'));
  const dirs: HostCgroupDir[] = [];
  const cg: HostCgroup = { dirs };
  try {
    for (const h of hierarchiesOf(readFileSync('/proc/self/mountinfo', 'utf8'))) {
      const path = dirIn(h, inner, own);
      const created = await makeCgroupDir(path, h.mountPoint, h.controllers.includes('cpuset'));
      const controllers = h.version === 1 ? h.controllers : await enableV2(path, h.mountPoint);
      dirs.push({ path, version: h.version, controllers, created });
    }
    await limitCpu(cg, spec);
  } catch (err) {
    await removeHostCgroup(cg);
    throw err;
  }
  return cg;
}

/**
 * The plan for a sandbox's owner: its cgroup, and the sandbox spec's memory
 * limit when it sets one (a limit of 0 or less is unset).
 */
export function hostCgroupPlan(cgroup: HostCgroup, spec: Spec): HostCgroupPlan {
  const limit = spec.linux?.resources?.memory?.limit;
  return { cgroup, ...(typeof limit === 'number' && limit > 0 ? { memoryLimitBytes: limit } : {}) };
}

/** The plan startSandbox wrote for the sandbox process, if any. */
export async function readHostCgroupPlan(file: string): Promise<HostCgroupPlan | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as HostCgroupPlan;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new RuntimeError(`read ${file}: ${(err as Error).message}`, 1, { cause: err });
  }
}

/**
 * The cgroup directories the calling process is in now, one per mounted
 * hierarchy: where a process that joins a sandbox's cgroup (the containerd
 * shim) goes back before removing it, since a cgroup that holds a process
 * cannot be removed (EBUSY).
 */
export function ownCgroupDirs(): string[] {
  const own = ownCgroupsOf(readFileSync('/proc/self/cgroup', 'utf8'));
  return hierarchiesOf(readFileSync('/proc/self/mountinfo', 'utf8')).map((h) =>
    dirIn(h, { path: '', absolute: false }, own),
  );
}

/** Moves `pid` into each directory (cgroup.procs). Errors name the directory. */
export async function moveToCgroupDirs(dirs: readonly string[], pid: number): Promise<void> {
  for (const d of dirs) await write(d, 'cgroup.procs', String(pid));
}

/**
 * Moves `pid` (and so what it starts later) into every directory. A pid
 * that has already exited (the kernel says ESRCH) joins nothing and is no
 * error: the shim of `exec -d ID true` may be gone by then, and runc's
 * `exec -d` of a process that ends at once succeeds too.
 */
export async function joinHostCgroup(cg: HostCgroup, pid: number): Promise<void> {
  for (const d of cg.dirs) {
    try {
      await write(d.path, 'cgroup.procs', String(pid));
    } catch (err) {
      if (((err as Error).cause as NodeJS.ErrnoException | undefined)?.code === 'ESRCH') return;
      throw err;
    }
  }
}

/**
 * Sets the memory limit to what the cgroup holds now (the booted VM, its
 * daemons) + the containers' limits + HOST_MEMORY_MARGIN_BYTES, and returns
 * the measured part in bytes; undefined when no hierarchy has memory.
 */
export async function limitMemoryAfterBoot(
  cg: HostCgroup,
  containersBytes: number,
): Promise<{ measured: number; limit: number } | undefined> {
  const d = cg.dirs.find((x) => x.controllers.includes('memory'));
  if (d === undefined) return undefined;
  const usageFile = d.version === 1 ? 'memory.usage_in_bytes' : 'memory.current';
  const measured = Number((await readFile(`${d.path}/${usageFile}`, 'utf8')).trim());
  const limit = measured + containersBytes + HOST_MEMORY_MARGIN_BYTES;
  await write(d.path, d.version === 1 ? 'memory.limit_in_bytes' : 'memory.max', String(limit));
  return { measured, limit };
}

/**
 * Removes the directories kapsel made, once their processes are gone (they
 * die with the sandbox process; waits up to `waitMs` for them). A cgroup
 * that was there before is left, as runc leaves a parent.
 */
export async function removeHostCgroup(cg: HostCgroup, waitMs = 5000): Promise<void> {
  const deadline = Date.now() + waitMs;
  const failed: string[] = [];
  for (const d of cg.dirs) {
    if (!d.created) continue;
    for (;;) {
      try {
        await rmdir(d.path);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code !== 'EBUSY' || Date.now() > deadline) {
          failed.push(`${d.path}: ${code ?? String(err)}`);
          break;
        }
        await sleep(50);
      }
    }
  }
  if (failed.length > 0) throw new RuntimeError(`remove host cgroup: ${failed.join('; ')}`);
}

/** Σ quota/period of the containers as one quota over 100 ms (or the one period given). */
async function limitCpu(cg: HostCgroup, spec: Spec): Promise<void> {
  const cpu = spec.linux?.resources?.cpu;
  const quota = cpu?.quota;
  if (typeof quota !== 'number' || quota <= 0) return;
  const period = typeof cpu?.period === 'number' && cpu.period > 0 ? cpu.period : 100_000;
  const d = cg.dirs.find((x) => x.controllers.includes('cpu'));
  if (d === undefined) return;
  if (d.version === 1) {
    await write(d.path, 'cpu.cfs_period_us', String(period));
    await write(d.path, 'cpu.cfs_quota_us', String(quota));
  } else {
    await write(d.path, 'cpu.max', `${quota} ${period}`);
  }
}

/**
 * mkdir -p, level by level: a new v1 cpuset cgroup has no CPUs or memory
 * nodes and refuses tasks until they are copied from its parent (runc
 * cpuset.go ensureParent). Returns whether the leaf was made here.
 */
async function makeCgroupDir(path: string, mountPoint: string, cpuset: boolean): Promise<boolean> {
  if (existsSync(path)) return false;
  if (path !== mountPoint && !existsSync(dirname(path))) {
    await makeCgroupDir(dirname(path), mountPoint, cpuset);
  }
  try {
    await mkdir(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new RuntimeError(
      `mkdir ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      1,
      {
        cause: err,
      },
    );
  }
  if (cpuset) {
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      if ((await readFile(`${path}/${f}`, 'utf8')).trim() === '') {
        await write(path, f, (await readFile(`${dirname(path)}/${f}`, 'utf8')).trim());
      }
    }
  }
  return true;
}

/**
 * cgroup v2: the controllers the limits need (memory, cpu) are enabled in
 * each ancestor's cgroup.subtree_control that offers them. The kernel
 * refuses that where the ancestor holds processes itself (cgroup v2's "no
 * internal processes" rule); the cgroup is then kept without them.
 */
async function enableV2(path: string, mountPoint: string): Promise<string[]> {
  const chain: string[] = [];
  for (let p = dirname(path); p.startsWith(mountPoint); p = dirname(p)) {
    chain.unshift(p);
    if (p === mountPoint) break;
  }
  for (const parent of chain) {
    const offered = (await readFile(`${parent}/cgroup.controllers`, 'utf8')).trim().split(/\s+/);
    for (const c of ['memory', 'cpu'].filter((x) => offered.includes(x))) {
      await writeFile(`${parent}/cgroup.subtree_control`, `+${c}`).catch(() => undefined);
    }
  }
  return (await readFile(`${path}/cgroup.controllers`, 'utf8')).trim().split(/\s+/).filter(Boolean);
}

async function write(dir: string, file: string, value: string): Promise<void> {
  try {
    await writeFile(`${dir}/${file}`, value);
  } catch (err) {
    throw new RuntimeError(
      `write ${dir}/${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      1,
      { cause: err },
    );
  }
}
