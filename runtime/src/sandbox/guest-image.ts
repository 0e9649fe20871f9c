import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadedSettings, settings } from '../config/settings.js';
import type { HypervisorSettings, Source } from '../config/schema.js';
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
 * How the guest's files reach it (hypervisor.guest_image, KAPSEL_GUEST_IMAGE):
 * - `pmem` (default when built): a 3 MB initrd with init and the modules,
 *   and the rest in image.erofs, mapped read-only into every guest through
 *   virtio-pmem and mounted with DAX, so all VMs share one copy of node and
 *   its libraries in the host's page cache;
 * - `initrd`: everything in one initrd, unpacked into each guest's RAM.
 */
export type GuestImageMode = 'pmem' | 'initrd';

/**
 * The guest kernel, initrd and image: the configured ones (hypervisor.kernel,
 * .initrd, .guest_image), else those rootfs/build.sh made. The pmem mode
 * falls back to the single initrd while image.erofs is not built, and so
 * does a configured initrd without a configured mode.
 */
export function guestImage(
  hv: Pick<HypervisorSettings, 'kernel' | 'initrd' | 'guest_image'> = settings().hypervisor,
  sources: Readonly<Record<string, Source>> = loadedSettings().sources,
): GuestImage {
  const dir = join(packageRoot(), 'build', 'guest');
  // The uncompressed ELF kernel boots through its PVH entry, skipping the
  // decompressor: 19.1 -> 12.8 s to a trivial init under TCG here, and 37 MB
  // less guest RAM touched (docs/light-sandboxes.md). vmlinuz if it is absent.
  const vmlinux = join(dir, 'vmlinux');
  const kernel =
    hv.kernel !== '' ? hv.kernel : existsSync(vmlinux) ? vmlinux : join(dir, 'vmlinuz');
  const modeSet = sources['hypervisor.guest_image'] !== 'default';
  const mode = !modeSet && hv.initrd !== '' ? 'initrd' : hv.guest_image;
  const imageFile = join(dir, 'image.erofs');
  const smallInitrd = join(dir, 'image-initrd.img');
  if (mode === 'pmem' && existsSync(imageFile) && existsSync(smallInitrd)) {
    const image = { kernel, initrd: smallInitrd };
    checkExists([kernel]);
    return { ...image, image: { path: imageFile, sizeBytes: statSync(imageFile).size } };
  }
  const image = { kernel, initrd: hv.initrd !== '' ? hv.initrd : join(dir, 'initrd.img') };
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
