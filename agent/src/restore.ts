// What a guest restored from a template must do before it runs anything:
// every clone of one saved state woke up with the same RNG state, the
// same (stale) wall clock, and without the virtio-fs device, which the
// host hot-plugs after the restore (QEMU 7.2 cannot save a VM that has one).
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Native } from './native/types.js';
import { failedPrecondition } from './errors.js';

/** Where the kernel lists the devices bound to the virtiofs driver (fs/fuse/virtio_fs.c). */
const VIRTIOFS_DRIVER_DIR = '/sys/bus/virtio/drivers/virtiofs';
const BOOT_ID = '/proc/sys/kernel/random/boot_id';
const POLL_MS = 10;

export interface RestoreResult {
  bootId: string;
  previousRealtimeNs: bigint;
}

/**
 * Reseeds the RNG from `entropy`, sets CLOCK_REALTIME to `realtimeNs`, and
 * waits up to `virtiofsWaitMs` for a virtio-fs device to be bound to its
 * driver: the guest's virtio_fs_probe() registers the tag, and a mount of
 * it before that fails (EINVAL, "tag not found", in 6.1). The order
 * matters: nothing that reads the RNG (boot_id on first read) runs before
 * the reseed. Errors name the step; a missing device is FAILED_PRECONDITION.
 */
export async function restoreGuest(
  native: Native,
  entropy: Buffer,
  realtimeNs: bigint,
  virtiofsWaitMs: number,
): Promise<RestoreResult> {
  native.reseedRandom(entropy);
  const previousRealtimeNs = BigInt(Date.now()) * 1_000_000n;
  native.setRealtime(realtimeNs);
  if (virtiofsWaitMs > 0) await waitVirtiofsBound(virtiofsWaitMs);
  const bootId = (await readFile(BOOT_ID, 'utf8')).trim();
  return { bootId, previousRealtimeNs };
}

/** Whether a virtio-fs device is bound to its driver, so its tag can be mounted. */
export async function virtiofsBound(): Promise<boolean> {
  const bound = await readdir(VIRTIOFS_DRIVER_DIR).catch(() => [] as string[]);
  return bound.some((name) => name.startsWith('virtio'));
}

/** Polls virtiofsBound() for up to `ms`; FAILED_PRECONDITION when none came. */
export async function waitVirtiofsBound(ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await virtiofsBound()) return;
    if (Date.now() >= deadline) {
      throw failedPrecondition(
        `wait for the virtio-fs device: none bound to ${VIRTIOFS_DRIVER_DIR} after ${ms} ms`,
      );
    }
    await sleep(POLL_MS);
  }
}
