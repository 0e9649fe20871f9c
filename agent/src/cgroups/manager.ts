import { existsSync } from 'node:fs';
import { mkdir, rmdir } from 'node:fs/promises';
import { cpus as osCpus } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { LinuxResources } from '../../../oci/resources.js';
import type { Device, Spec } from '../../../oci/spec.js';
import type { StatsContainerResponse } from '../../../proto/generated/agent.js';
import { AgentError, alreadyExists } from '../errors.js';
import type { Native } from '../native/types.js';
import { cpuController } from './cpu.js';
import type { CgroupHierarchy, ContainerCgroups } from './container-cgroups.js';
import { cpusetController, parseCpuList } from './cpuset.js';
import { DevicesController } from './devices.js';
import { setFrozen } from './freezer.js';
import { readCgroupFile, writeCgroupFile } from './fs.js';
import { hugetlbController } from './hugetlb.js';
import { ioController } from './io.js';
import { memoryController } from './memory.js';
import { containerCgroupName, KAPSEL_SUBTREE } from './path.js';
import { pidsController } from './pids.js';
import { readStats } from './stats.js';
import { unifiedController } from './unified.js';
import type { Controller, HostLimits } from './types.js';
import { validateResources } from './validate.js';
import { mkdirAll } from '../../../oci/fs/mkdir-all.js';

/** How long removal waits for a killed cgroup to empty before giving up. */
const RMDIR_TIMEOUT_MS = 5000;

export interface CgroupManagerOptions {
  /** A cgroup v2 mount, e.g. /sys/fs/cgroup (or a temp directory in unit tests). */
  root: string;
  native: Pick<Native, 'attachDeviceFilter'>;
  log: Logger;
  /** Closes device program fds (unit tests with the fake native record instead). */
  closeFd?: (fd: number) => void;
}

/**
 * The container cgroups of this guest, under <root>/kapsel: created and
 * configured before the init is cloned into them, updated, frozen, read and
 * removed. Resources are validated by validate() first; the controllers
 * only write.
 */
export class CgroupManager implements ContainerCgroups, CgroupHierarchy {
  readonly root: string;
  private readonly devices: DevicesController;
  private readonly controllers: readonly Controller[];
  private readonly log: Logger;

  constructor(opts: CgroupManagerOptions) {
    this.root = opts.root;
    this.log = opts.log;
    this.devices = new DevicesController(opts.native, opts.closeFd);
    // runc's order for cgroup v2; unified after the typed fields so it wins,
    // devices last so a failed limit leaves no program behind.
    this.controllers = [
      pidsController,
      memoryController,
      ioController,
      cpuController,
      cpusetController,
      hugetlbController,
      unifiedController,
      this.devices,
    ];
  }

  /** Whether root is a cgroup v2 hierarchy (cgroup.controllers exists only there). */
  static isCgroup2(root: string): boolean {
    return existsSync(join(root, 'cgroup.controllers'));
  }

  /** The CPUs and memory nodes containers may be given. */
  async hostLimits(): Promise<HostLimits> {
    const cpus = await readCgroupFile(this.root, 'cpuset.cpus.effective');
    const mems = await readCgroupFile(this.root, 'cpuset.mems.effective');
    return {
      cpus:
        cpus !== undefined
          ? parseCpuList(cpus, 'cpuset.cpus.effective')
          : osCpus().map((_, i) => i),
      mems: mems !== undefined ? parseCpuList(mems, 'cpuset.mems.effective') : [0],
    };
  }

  async validate(resources: unknown): Promise<LinuxResources> {
    return validateResources(resources, await this.hostLimits());
  }

  checkSpec(resources: LinuxResources | undefined): Promise<LinuxResources> {
    return this.validate(resources);
  }

  /** The container's cgroup, made before its init, which is then born in it. */
  async createFor(id: string, spec: Spec, valid: LinuxResources | undefined): Promise<string> {
    const dir = this.dirFor(id, spec.linux?.cgroupsPath);
    await this.create(dir, valid ?? {}, spec.linux?.devices ?? []);
    return dir;
  }

  require(): CgroupHierarchy {
    return this;
  }

  /** The directory a container's cgroup gets; refuses a cgroupsPath that leaves the subtree. */
  dirFor(id: string, cgroupsPath: string | undefined): string {
    return join(this.root, KAPSEL_SUBTREE, containerCgroupName(id, cgroupsPath));
  }

  /**
   * Makes the leaf (with its parents, each delegating every controller it
   * has to its children) and applies resources; on failure the leaf is
   * removed again.
   */
  async create(
    dir: string,
    resources: LinuxResources,
    specDevices: readonly Device[] = [],
  ): Promise<void> {
    const subtree = join(this.root, KAPSEL_SUBTREE);
    for (let p = subtree; ;) {
      await this.ensureDelegating(p);
      const rest = relative(p, dir).split('/');
      if (rest.length <= 1) break;
      p = join(p, rest[0] ?? '');
    }
    try {
      await mkdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw alreadyExists(`linux.cgroupsPath: cgroup ${dir} already exists`);
      }
      throw err;
    }
    try {
      this.devices.setSpecDevices(dir, specDevices);
      await this.apply(dir, resources);
    } catch (err) {
      await this.remove(dir).catch((e: unknown) => {
        this.log.warn({ err: e, cgroup: dir }, 'removing a half-made cgroup failed');
      });
      throw err;
    }
  }

  /** Applies (validated) resources to an existing cgroup: create and UpdateContainer. */
  async apply(dir: string, resources: LinuxResources): Promise<void> {
    for (const c of this.controllers) await c.apply(resources, dir);
  }

  pause(dir: string): Promise<void> {
    return setFrozen(dir, true);
  }

  resume(dir: string): Promise<void> {
    return setFrozen(dir, false);
  }

  stats(dir: string): Promise<StatsContainerResponse> {
    return readStats(dir);
  }

  /**
   * Kills whatever is left (cgroup.kill, Linux 5.14), thaws, and removes the
   * leaf, retrying while the kernel still counts it populated (exiting tasks
   * leave the cgroup asynchronously: rmdir says EBUSY until they have).
   * Then parents under the subtree that became empty go too.
   */
  async remove(dir: string): Promise<void> {
    if (existsSync(join(dir, 'cgroup.kill'))) {
      await writeCgroupFile(dir, 'cgroup.kill', '1', 'cgroup.kill');
    }
    this.devices.forget(dir);
    const deadline = Date.now() + RMDIR_TIMEOUT_MS;
    for (;;) {
      try {
        await rmdir(dir);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code !== 'EBUSY' || Date.now() >= deadline) {
          throw new AgentError('internal', `rmdir ${dir}: ${(err as Error).message}`, {
            cause: err,
          });
        }
        await sleep(20);
      }
    }
    const subtree = join(this.root, KAPSEL_SUBTREE);
    for (let p = dirname(dir); p.startsWith(`${subtree}/`); p = dirname(p)) {
      // Another container may live below it: EBUSY/ENOTEMPTY ends the walk.
      const removed = await rmdir(p).then(
        () => true,
        () => false,
      );
      if (!removed) break;
    }
  }

  /** mkdir p if needed, and enable in its subtree_control every controller it has. */
  private async ensureDelegating(p: string): Promise<void> {
    await mkdirAll(p);
    const available = (await readCgroupFile(p, 'cgroup.controllers')) ?? '';
    const enabled = new Set(((await readCgroupFile(p, 'cgroup.subtree_control')) ?? '').split(' '));
    for (const c of available.split(' ').filter((x) => x !== '' && !enabled.has(x))) {
      await writeCgroupFile(p, 'cgroup.subtree_control', `+${c}`, `cgroup.subtree_control of ${p}`);
    }
  }
}
