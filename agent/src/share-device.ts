// The device the host shares the containers' files over: virtio-fs
// (fs/fuse/virtio_fs.c) or virtio-9p (net/9p/trans_virtio.c). A guest
// restored from a template gets it hot-plugged after the restore, so a
// mount may come before the guest has probed it.
import { readdir } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { failedPrecondition } from './errors.js';

/** Where the kernel lists the devices bound to each share driver. */
const SHARE_DRIVER_DIRS = [
  '/sys/bus/virtio/drivers/virtiofs',
  '/sys/bus/virtio/drivers/9pnet_virtio',
] as const;
const POLL_MS = 10;

/** Whether a share device is bound to its driver, so its tag can be mounted. */
export async function shareDeviceBound(): Promise<boolean> {
  for (const dir of SHARE_DRIVER_DIRS) {
    const bound = await readdir(dir).catch(() => [] as string[]);
    if (bound.some((name) => name.startsWith('virtio'))) return true;
  }
  return false;
}

/** Polls shareDeviceBound() for up to `ms`; FAILED_PRECONDITION when none came. */
export async function waitShareDeviceBound(ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await shareDeviceBound()) return;
    if (Date.now() >= deadline) {
      throw failedPrecondition(
        `wait for the share device: none bound to ${SHARE_DRIVER_DIRS.join(' or ')} after ${String(ms)} ms`,
      );
    }
    await sleep(POLL_MS);
  }
}
