import { mkdir, rmdir } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import type { Storage } from '../../proto/generated/agent.js';
import { invalidArgument } from './errors.js';
import type { Native } from './native/types.js';

/**
 * Mounts the filesystems a container needs before it is built (its rootfs,
 * shared from the host over virtio-fs) and returns their mount points in
 * mount order, for unmountAll.
 */
export async function mountStorages(
  native: Native,
  storages: readonly Storage[],
): Promise<string[]> {
  const mounted: string[] = [];
  try {
    for (const [i, s] of storages.entries()) {
      const field = `storages[${i}]`;
      if (!isAbsolute(s.mountPoint)) {
        throw invalidArgument(
          `${field}.mount_point: must be absolute, got ${JSON.stringify(s.mountPoint)}`,
        );
      }
      await mkdir(s.mountPoint, { recursive: true });
      switch (s.driver) {
        case 'virtiofs':
          await native.mount(s.source, s.mountPoint, 'virtiofs', 0, s.options.join(','));
          break;
        case 'bind':
          if (!isAbsolute(s.source)) {
            throw invalidArgument(`${field}.source: must be absolute for a bind storage`);
          }
          await native.mount(s.source, s.mountPoint, '', MS_BIND | MS_REC, '');
          break;
        default:
          throw invalidArgument(
            `${field}.driver: unknown storage driver ${JSON.stringify(s.driver)}`,
          );
      }
      mounted.push(s.mountPoint);
    }
  } catch (err) {
    await unmountAll(native, mounted);
    throw err;
  }
  return mounted;
}

export async function unmountAll(native: Native, mountPoints: readonly string[]): Promise<void> {
  for (const mp of [...mountPoints].reverse()) {
    await native.umount(mp);
    await rmdir(mp).catch(() => undefined);
  }
}

const MS_BIND = 0x1000;
const MS_REC = 0x4000;
