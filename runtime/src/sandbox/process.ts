import { closeSync, openSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { startDetached } from '../sys/detached.js';
import { RuntimeError } from '../sys/errors.js';
import { isAlive, killQuietly, readPid } from '../sys/pids.js';
import type { HostCgroupPlan } from './host-cgroup/apply.js';
import type { VmSize } from './sizing.js';
import { cleanupVmDir, vmDirLayout } from './vm-dir.js';

/*
 * The sandbox process (`kapsel __monitor`, serve.ts) seen from the CLI: start
 * it, ask whether it runs, wait for it to end. One per VM.
 */

/**
 * Boots a sandbox: makes its VM directory, starts its process there (inside
 * the host network namespace `enter` puts it in, see network/netns.ts) and
 * returns the process's pid once the agent answers through it.
 */
export async function startSandbox(
  root: string,
  sandboxId: string,
  vmDir: string,
  debug: boolean,
  size: VmSize,
  enter: readonly string[] = [],
  hostCgroup?: HostCgroupPlan,
): Promise<number> {
  const layout = vmDirLayout(vmDir);
  try {
    await mkdir(vmDir, { recursive: false, mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new RuntimeError(`sandbox ${sandboxId} exists already`, 1, { cause: err });
    }
    await mkdir(vmDir, { recursive: true, mode: 0o700 });
  }
  if (hostCgroup !== undefined) await writeFile(layout.hostCgroup, JSON.stringify(hostCgroup));
  const logFd = openSync(layout.log, 'a');
  try {
    return await startDetached(
      [
        '--root',
        root,
        ...(debug ? ['--debug'] : []),
        '__monitor',
        sandboxId,
        '--memory-mib',
        String(size.memoryMiB),
        '--cpus',
        String(size.cpus),
      ],
      ['ignore', logFd, logFd],
      'start the sandbox',
      enter,
    );
  } finally {
    closeSync(logFd);
  }
}

/**
 * The pid of the sandbox process of `vmDir` while it runs (a pod's container
 * joins only a running one), else undefined.
 */
export async function sandboxPid(vmDir: string): Promise<number | undefined> {
  const pid = await readPid(vmDirLayout(vmDir).pidFile);
  return pid !== undefined && isAlive(pid) ? pid : undefined;
}

/**
 * Waits for a sandbox's process to finish (it does with its last container),
 * killing it if it does not, then cleans the VM directory up.
 */
export async function stopSandbox(vmDir: string, log: Logger): Promise<void> {
  const pid = await readPid(vmDirLayout(vmDir).pidFile);
  for (let i = 0; i < 150 && isAlive(pid); i++) await sleep(100);
  if (pid !== undefined && isAlive(pid)) {
    // Its QEMU and virtiofsd die with it (PR_SET_PDEATHSIG).
    log.warn({ pid }, 'sandbox monitor did not stop; killing it');
    killQuietly(pid);
    for (let i = 0; i < 50 && isAlive(pid); i++) await sleep(100);
  }
  await cleanupVmDir(vmDir, log);
}
