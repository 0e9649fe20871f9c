import { mkdir, rmdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Storage } from '../../proto/generated/agent.js';
import type { Native } from './native/types.js';

/** A storage the agent mounted, and the first directory it made for it (mkdir -p). */
export interface MountedStorage {
  mountPoint: string;
  /** The topmost directory created for the mount point; undefined if it existed. */
  made: string | undefined;
}

/**
 * Mounts the filesystems a container needs before it is built (its rootfs,
 * shared from the host over virtio-fs) and returns them in mount order, for
 * unmountAll. The storages were checked field by field with the request
 * (request-checks.ts), so nothing is made for a request that is refused.
 */
export async function mountStorages(
  native: Native,
  storages: readonly Storage[],
): Promise<MountedStorage[]> {
  const mounted: MountedStorage[] = [];
  try {
    for (const s of storages) {
      const made = await mkdir(s.mountPoint, { recursive: true });
      try {
        if (s.driver === 'virtiofs') {
          await native.mount(s.source, s.mountPoint, 'virtiofs', 0, s.options.join(','));
        } else {
          await native.mount(s.source, s.mountPoint, '', MS_BIND | MS_REC, '');
        }
      } catch (err) {
        await removeMade(s.mountPoint, made);
        throw err;
      }
      mounted.push({ mountPoint: s.mountPoint, made });
    }
  } catch (err) {
    await unmountAll(native, mounted);
    throw err;
  }
  return mounted;
}

export async function unmountAll(native: Native, mounts: readonly MountedStorage[]): Promise<void> {
  for (const m of [...mounts].reverse()) {
    await native.umount(m.mountPoint);
    await removeMade(m.mountPoint, m.made);
  }
}

/** Removes the directories mkdir -p made, from the mount point up to `made`. */
async function removeMade(mountPoint: string, made: string | undefined): Promise<void> {
  if (made === undefined) return;
  for (let dir = mountPoint; ; dir = dirname(dir)) {
    if (
      !(await rmdir(dir).then(
        () => true,
        () => false,
      ))
    )
      return;
    if (dir === made || dir === '/') return;
  }
}

const MS_BIND = 0x1000;
const MS_REC = 0x4000;
