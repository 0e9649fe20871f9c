import { writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { Sandbox, type SandboxOptions } from './boot.js';
import {
  joinHostCgroup,
  limitMemoryAfterBoot,
  readHostCgroupPlan,
  type HostCgroupPlan,
} from './host-cgroup/apply.js';
import { makeSharedMount } from './host-mounts.js';
import type { VmSize } from './sizing.js';
import { cleanupVmDir, vmDirLayout, type VmDirLayout } from './vm-dir.js';
import { mkdirAll } from '../../../oci/fs/mkdir-all.js';
import { RuntimeError } from '../sys/errors.js';
import { readyTimeoutMs, withReadyDeadline } from '../sys/ready-deadline.js';
import { keepBootLogs } from './boot-logs.js';

/**
 * The host end of one VM, held in-process by whichever process owns the
 * sandbox: the runc path's sandbox process (`kapsel __monitor`, serve.ts) or
 * the containerd shim v2 (shimv2/). boot() makes the VM directory's shared
 * mount and boots QEMU, virtiofsd and the agent connection; release() takes
 * all of it down again and removes the directory. Both paths own their VM
 * through this one class, so there is one boot and one teardown.
 */
export class SandboxHost {
  private constructor(
    readonly sandbox: Sandbox,
    readonly paths: VmDirLayout,
    private readonly log: Logger,
  ) {}

  /**
   * Boots a sandbox in `dir` (made if missing): writes this process's pid as
   * the sandbox process's, shares `<dir>/shared` into the guest, waits for
   * the agent, at most KAPSEL_READY_TIMEOUT (sys/ready-deadline.ts).
   * `opts.signal` cuts the boot short; `opts.adopt` receives
   * every host process started for the sandbox (supervisor.ts).
   * `opts.hostCgroup` is the host cgroup to join when no plan was written
   * into the directory by its creator (the runc path's startSandbox); it is
   * written there, for whoever cleans up after this process. On failure the
   * directory is cleaned up before the error, its logs kept (boot-logs.ts)
   * and named in the error.
   */
  static async boot(
    dir: string,
    size: VmSize,
    log: Logger,
    opts: Pick<SandboxOptions, 'signal' | 'adopt'> & { hostCgroup?: HostCgroupPlan } = {},
  ): Promise<SandboxHost> {
    const paths = vmDirLayout(dir);
    const { hostCgroup: plan, ...sandboxOpts } = opts;
    const deadline = withReadyDeadline("the sandbox's guest agent", readyTimeoutMs(), opts.signal);
    sandboxOpts.signal = deadline.signal;
    try {
      await mkdirAll(dir, 0o700);
      await writeFile(paths.pidFile, String(process.pid));
      if (plan !== undefined) await writeFile(paths.hostCgroup, JSON.stringify(plan));
      // Joined first: QEMU and virtiofsd start in it, and every page they
      // touch is charged there.
      const hostCgroup = await readHostCgroupPlan(paths.hostCgroup);
      if (hostCgroup !== undefined) await joinHostCgroup(hostCgroup.cgroup, process.pid);
      await makeSharedMount(paths.shared);
      const sandbox = await Sandbox.start({
        stateDir: paths.dir,
        shareDir: paths.shared,
        log,
        ...size,
        ...sandboxOpts,
      });
      if (hostCgroup?.memoryLimitBytes !== undefined) {
        const m = await limitMemoryAfterBoot(hostCgroup.cgroup, hostCgroup.memoryLimitBytes);
        log.info({ ...m }, 'host cgroup memory limit set (bytes: measured after boot, limit)');
      }
      return new SandboxHost(sandbox, paths, log);
    } catch (err) {
      const kept = await keepBootLogs(dir);
      await cleanupVmDir(dir, log);
      if (kept === '' || !(err instanceof Error)) throw err;
      throw new RuntimeError(`${err.message}; ${kept}`, 1, { cause: err });
    } finally {
      deadline.done();
    }
  }

  /**
   * Stops the VM (DestroySandbox, then QEMU and virtiofsd for sure), runs
   * `beforeCleanup` (what the owner added on the host, such as taps), and
   * removes the VM directory, never through a mount. After a fault
   * (`graceful` false) the guest is not asked to shut down.
   */
  async release(beforeCleanup?: () => Promise<void>, graceful = true): Promise<void> {
    await this.sandbox.stop(graceful);
    await beforeCleanup?.().catch((err: unknown) => {
      this.log.warn({ err }, 'releasing the sandbox host resources failed');
    });
    await cleanupVmDir(this.paths.dir, this.log);
  }
}
