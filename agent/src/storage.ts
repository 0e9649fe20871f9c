import { rmdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Storage } from '../../proto/generated/agent.js';
import type { Native } from './native/types.js';
import { shareDeviceBound, waitShareDeviceBound } from './share-device.js';
import { mkdirAll } from '../../oci/fs/mkdir-all.js';

/** A storage the agent mounted, and the first directory it made for it (mkdir -p). */
export interface MountedStorage {
  mountPoint: string;
  /** The topmost directory created for the mount point; undefined if it existed. */
  made: string | undefined;
}

/**
 * Mounts the filesystems a container needs before it is built (its rootfs,
 * shared from the host over virtio-fs or virtio-9p) and returns them in
 * mount order, for unmountAll. The storages were checked field by field with the request
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
          await mountShare(native, s.driver, s.source, s.mountPoint, s.options.join(','));
        } else if (s.driver === '9p') {
          const whole = await ninepMount(native, s.source, s.options.join(','));
          await native.mount(whole, s.mountPoint, '', MS_BIND | MS_REC, '');
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
 * How long a mount waits for a share device that is not there yet: a
 * guest restored from a template gets its device hot-plugged after the
 * restore, and the host may send CreateContainer before the guest's PCI
 * hot-plug and the driver's probe have run.
 */
const SHARE_PLUG_WAIT_MS = 20_000;

/**
 * mount -t virtiofs (or 9p) of a tag; if the tag is unknown (6.1's
 * virtiofs says EINVAL, "tag not found"; 9p's virtio transport ENOENT, "no
 * channels available") while no share device is bound yet, waits for one
 * and tries once more. For 9p, `data` carries trans=virtio and the rest
 * (Documentation/filesystems/9p.rst); the host sends them.
 */
async function mountShare(
  native: Native,
  fstype: 'virtiofs' | '9p',
  tag: string,
  target: string,
  data: string,
): Promise<void> {
  try {
    await native.mount(tag, target, fstype, 0, data);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (!['EINVAL', 'ENODEV', 'ENOENT'].includes(code ?? '') || (await shareDeviceBound())) {
      throw err;
    }
    await waitShareDeviceBound(SHARE_PLUG_WAIT_MS);
    await native.mount(tag, target, fstype, 0, data);
  }
}

/** Where the agent mounts each 9p tag once, for every storage of it to bind. */
const NINEP_MOUNTS_DIR = '/run/kapsel/9p';
/** Each 9p tag's one mount: its path once mounted, by tag. */
const ninepMounts = new Map<string, Promise<string>>();

/**
 * The 9p tag `tag` mounted once for the sandbox's life, at
 * NINEP_MOUNTS_DIR/<tag>: 9p's virtio transport gives a channel to one
 * mount at a time (p9_virtio_create in net/9p/trans_virtio.c: a second
 * mount of the tag fails with EBUSY), while every container mounts the
 * share. So each container's storage is a bind of this mount, as several
 * virtiofs mounts of one tag share one superblock. The first storage's
 * options are the mount's; the host sends the same for every container.
 */
function ninepMount(native: Native, tag: string, data: string): Promise<string> {
  let mounted = ninepMounts.get(tag);
  if (mounted === undefined) {
    const path = `${NINEP_MOUNTS_DIR}/${tag}`;
    mounted = (async (): Promise<string> => {
      await mkdirAll(path);
      await mountShare(native, '9p', tag, path, data);
      return path;
    })();
    ninepMounts.set(tag, mounted);
    // A failed mount is tried again by the next container.
    mounted.catch(() => ninepMounts.delete(tag));
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
