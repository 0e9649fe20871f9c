import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { RuntimeError } from '../sys/errors.js';
import { packageRoot } from '../sys/package-root.js';

export interface GuestImage {
  kernel: string;
  initrd: string;
}

/** The guest kernel and initrd rootfs/build.sh made; env overrides for tests. */
export function guestImage(): GuestImage {
  const dir = join(packageRoot(), 'build', 'guest');
  const image = {
    kernel: process.env['KAPSEL_KERNEL'] ?? join(dir, 'vmlinuz'),
    initrd: process.env['KAPSEL_INITRD'] ?? join(dir, 'initrd.img'),
  };
  for (const file of [image.kernel, image.initrd]) {
    if (!existsSync(file)) {
      throw new RuntimeError(`guest image: ${file} does not exist (build it with npm run build)`);
    }
  }
  return image;
}
