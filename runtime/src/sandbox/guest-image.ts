import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { RuntimeError } from '../sys/errors.js';
import { packageRoot } from '../sys/package-root.js';
import type { VmImage } from './vm/config.js';

export interface GuestImage {
  kernel: string;
  initrd: string;
  /** The read-only image mapped with virtio-pmem (mode `pmem`). */
  image?: VmImage;
}

/**
 * How the guest's files reach it (KAPSEL_GUEST_IMAGE):
 * - `pmem` (default when built): a 3 MB initrd with init and the modules,
 *   and the rest in image.erofs, mapped read-only into every guest through
 *   virtio-pmem and mounted with DAX, so all VMs share one copy of node and
 *   its libraries in the host's page cache;
 * - `initrd`: everything in one initrd, unpacked into each guest's RAM.
 */
export type GuestImageMode = 'pmem' | 'initrd';

/** The guest kernel, initrd and image rootfs/build.sh made; env overrides for tests. */
export function guestImage(env: NodeJS.ProcessEnv = process.env): GuestImage {
  const dir = join(packageRoot(), 'build', 'guest');
  // The uncompressed ELF kernel boots through its PVH entry, skipping the
  // decompressor: 19.1 -> 12.8 s to a trivial init under TCG here, and 37 MB
  // less guest RAM touched (docs/light-sandboxes.md). vmlinuz if it is absent.
  const vmlinux = join(dir, 'vmlinux');
  const kernel = env['KAPSEL_KERNEL'] ?? (existsSync(vmlinux) ? vmlinux : join(dir, 'vmlinuz'));
  const mode = env['KAPSEL_GUEST_IMAGE'] ?? (env['KAPSEL_INITRD'] ? 'initrd' : 'pmem');
  if (mode !== 'pmem' && mode !== 'initrd') {
    throw new RuntimeError(
      `KAPSEL_GUEST_IMAGE: expected pmem or initrd, got ${JSON.stringify(mode)}`,
    );
  }
  const imageFile = join(dir, 'image.erofs');
  const smallInitrd = join(dir, 'image-initrd.img');
  if (mode === 'pmem' && existsSync(imageFile) && existsSync(smallInitrd)) {
    const image = { kernel, initrd: smallInitrd };
    checkExists([kernel]);
    return { ...image, image: { path: imageFile, sizeBytes: statSync(imageFile).size } };
  }
  const image = { kernel, initrd: env['KAPSEL_INITRD'] ?? join(dir, 'initrd.img') };
  checkExists([image.kernel, image.initrd]);
  return image;
}

function checkExists(files: string[]): void {
  for (const file of files) {
    if (!existsSync(file)) {
      throw new RuntimeError(`guest image: ${file} does not exist (build it with npm run build)`);
    }
  }
}
