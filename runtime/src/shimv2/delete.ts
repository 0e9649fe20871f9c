import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { DeleteResponse } from '../../../proto/generated/github.com/containerd/containerd/runtime/v2/task/shim.js';
import { readHostCgroupPlan, removeHostCgroup } from '../sandbox/host-cgroup/apply.js';
import { unmountTree } from '../sandbox/host-mounts.js';
import { sandboxPid } from '../sandbox/process.js';
import { cleanupVmDir, vmDirLayout } from '../sandbox/vm-dir.js';
import { socketPathOf, vmDirOfPod } from './address.js';
import type { ShimFlags } from './flags.js';
import { bundleOf, podOf } from './placement.js';

/** 128 + SIGKILL: what runc's shim reports for a task whose shim is gone. */
const KILLED = 137;

/**
 * `delete`: containerd's cleanup after a shim that died or never served
 * (runtime/v2/binary.go Delete). Unmounts the task's rootfs and, when the
 * pod's shim is gone, what its VM left on the host (QEMU and virtiofsd died
 * with it) and its host cgroup, then prints a DeleteResponse on stdout.
 */
export async function deleteCommand(f: ShimFlags): Promise<number> {
  const log = pino({ level: 'warn' }, process.stderr);
  const bundle = bundleOf(f);
  await unmountTree(join(bundle, 'rootfs')).catch((err: unknown) => {
    log.warn({ err }, 'unmounting the rootfs failed');
  });
  const pod = podOf(f);
  const vmDir = vmDirOfPod(pod.key);
  if (pod.ownsSandbox && (await sandboxPid(vmDir)) === undefined) {
    // The dead shim's host cgroup: its processes died with it (pdeathsig).
    const plan = await readHostCgroupPlan(vmDirLayout(vmDir).hostCgroup).catch(() => undefined);
    if (plan !== undefined) {
      await removeHostCgroup(plan.cgroup).catch((err: unknown) => {
        log.warn({ err }, 'removing the host cgroup failed');
      });
    }
    await cleanupVmDir(vmDir, log);
    await rm(socketPathOf(pod.key), { force: true });
  }
  process.stdout.write(
    DeleteResponse.encode({ pid: 0, exitStatus: KILLED, exitedAt: new Date() }).finish(),
  );
  return 0;
}
