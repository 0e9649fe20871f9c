import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RuntimeError } from './errors.js';

/** Where runc keeps state by default; ours, as DESIGN says. */
export const DEFAULT_ROOT = '/run/kapsel';

/**
 * The kapsel checkout or install this code runs from. Docker and containerd
 * call the binary by absolute path from any directory, so nothing here may
 * depend on the working directory.
 */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      const { name } = JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown };
      if (name === 'kapsel') return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the kapsel package root');
    dir = parent;
  }
}

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
