// What a guest restored from a template must do before it runs anything:
// every clone of one saved state woke up with the same RNG state, the
// same (stale) wall clock, and without the share's device, which the host
// hot-plugs after the restore (QEMU 7.2 cannot save a VM that has one).
import { readFile } from 'node:fs/promises';
import type { Native } from './native/types.js';
import { waitShareDeviceBound } from './share-device.js';

const BOOT_ID = '/proc/sys/kernel/random/boot_id';

export interface RestoreResult {
  bootId: string;
  previousRealtimeNs: bigint;
}

/**
 * Reseeds the RNG from `entropy`, sets CLOCK_REALTIME to `realtimeNs`, and
 * waits up to `shareWaitMs` for the share's device (virtio-fs or
 * virtio-9p) to be bound to its driver: the guest's probe registers the
 * tag, and a mount of it before that fails (share-device.ts). The order
 * matters: nothing that reads the RNG (boot_id on first read) runs before
 * the reseed. Errors name the step; a missing device is FAILED_PRECONDITION.
 */
export async function restoreGuest(
  native: Native,
  entropy: Buffer,
  realtimeNs: bigint,
  shareWaitMs: number,
): Promise<RestoreResult> {
  native.reseedRandom(entropy);
  const previousRealtimeNs = BigInt(Date.now()) * 1_000_000n;
  native.setRealtime(realtimeNs);
  if (shareWaitMs > 0) await waitShareDeviceBound(shareWaitMs);
  const bootId = (await readFile(BOOT_ID, 'utf8')).trim();
  return { bootId, previousRealtimeNs };
}
