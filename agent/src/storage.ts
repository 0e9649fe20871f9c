import { rmdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Storage } from '../../proto/generated/agent.js';
import type { Native } from './native/types.js';
import { virtiofsBound, waitVirtiofsBound } from './restore.js';
import { mkdirAll } from '../../oci/fs/mkdir-all.js';

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
      const made = await mkdirAll(s.mountPoint);
      try {
        if (s.driver === 'virtiofs') {
          await mountVirtiofs(native, s.source, s.mountPoint, s.options.join(','));
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

/**
 * How long a mount waits for a virtio-fs device that is not there yet: a
 * guest restored from a template gets its device hot-plugged after the
 * restore, and the host may send CreateContainer before the guest's PCI
 * hot-plug and virtio_fs_probe() have run.
 */
const VIRTIOFS_PLUG_WAIT_MS = 20_000;

/**
 * mount -t virtiofs; if the tag is unknown (6.1 says EINVAL, "tag not
 * found"; ENODEV/ENOENT elsewhere) while no virtio-fs device is bound yet,
 * waits for one and tries once more.
 */
async function mountVirtiofs(
  native: Native,
  tag: string,
  target: string,
  data: string,
): Promise<void> {
  try {
    await native.mount(tag, target, 'virtiofs', 0, data);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (!['EINVAL', 'ENODEV', 'ENOENT'].includes(code ?? '') || (await virtiofsBound())) throw err;
    await waitVirtiofsBound(VIRTIOFS_PLUG_WAIT_MS);
    await native.mount(tag, target, 'virtiofs', 0, data);
  }
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
