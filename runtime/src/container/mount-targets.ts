// runc's checks of mount targets inside the rootfs (libcontainer/
// rootfs_linux.go, runc 1.1: mountToRootfs and checkProcMount), made on the
// host before the VM boots: the rootfs the guest will see is this one. The
// guest's helper resolves every target inside the rootfs (openat2
// RESOLVE_IN_ROOT), so a symlink cannot lead a mount out of it; these
// checks refuse what runc refuses on top of that, with runc's words.
import { lstat, readlink, realpath, statfs } from 'node:fs/promises';
import { join, normalize, relative } from 'node:path';
import type { Mount } from '../../../oci/spec.js';
import { isBindMount } from '../../../oci/validate/index.js';
import { RuntimeError } from '../sys/errors.js';

/** statfs(2) f_type of procfs (linux/magic.h). */
const PROC_SUPER_MAGIC = 0x9fa0;

/** Files under /proc that lxcfs emulates: runc lets binds cover exactly these. */
const VALID_PROC_MOUNTS = [
  '/proc/cpuinfo',
  '/proc/diskstats',
  '/proc/meminfo',
  '/proc/stat',
  '/proc/swaps',
  '/proc/uptime',
  '/proc/loadavg',
  '/proc/slabinfo',
  '/proc/net/dev',
  '/proc/sys/kernel/ns_last_pid',
];

/** How runc wraps a failed mount (rootfs_linux.go mountToRootfs' caller). */
function mountError(m: Mount, reason: string): RuntimeError {
  return new RuntimeError(
    `error mounting ${JSON.stringify(m.source ?? '')} to rootfs at ${JSON.stringify(m.destination)}: ${reason}`,
  );
}

/**
 * The target of `destination` in `rootfs`, with symlinks resolved inside it
 * (what securejoin gives runc): an absolute link is taken from the rootfs.
 */
async function secureJoin(rootfs: string, destination: string): Promise<string> {
  let current = rootfs;
  const parts = normalize(destination)
    .split('/')
    .filter((p) => p !== '' && p !== '.');
  for (let hops = 0; parts.length > 0;) {
    const part = parts.shift() ?? '';
    if (part === '..') {
      current = current === rootfs ? rootfs : join(current, '..');
      continue;
    }
    const next = join(current, part);
    const st = await lstat(next).catch(() => undefined);
    if (st?.isSymbolicLink() === true && hops++ < 255) {
      const target = await readlink(next);
      parts.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
      if (target.startsWith('/')) current = rootfs;
      continue;
    }
    current = next;
  }
  return current;
}

/**
 * Refuses, as runc does: proc or sysfs on anything but a directory (or a
 * missing path), and a mount inside /proc unless it is proc itself, a bind
 * of a procfs over /proc, or one of the lxcfs files.
 * @throws RuntimeError with runc's message
 */
export async function checkMountTargets(rootfs: string, mounts: readonly Mount[]): Promise<void> {
  const root = await realpath(rootfs);
  for (const m of mounts) {
    if (m.type === 'proc' || m.type === 'sysfs') {
      // No securejoin here in runc: a symlink at the target is refused, not followed.
      const st = await lstat(join(root, normalize(m.destination))).catch(() => undefined);
      if (st !== undefined && !st.isDirectory()) {
        throw mountError(
          m,
          `filesystem ${JSON.stringify(m.type)} must be mounted on ordinary directory`,
        );
      }
      continue;
    }
    if (m.type === 'cgroup' || m.type === 'cgroup2' || m.type === 'mqueue' || m.type === 'tmpfs') {
      continue;
    }
    const dest = await secureJoin(root, m.destination);
    await checkProcMount(root, dest, m);
  }
}

async function checkProcMount(root: string, dest: string, m: Mount): Promise<void> {
  const path = relative(join(root, '/proc'), dest);
  if (path.startsWith('..')) return;
  if (path === '') {
    const source = isBindMount(m) ? m.source : undefined;
    const fs = source === undefined ? undefined : await statfs(source).catch(() => undefined);
    if (fs?.type === PROC_SUPER_MAGIC) return;
    throw mountError(m, `${JSON.stringify(dest)} cannot be mounted because it is not of type proc`);
  }
  if (VALID_PROC_MOUNTS.some((v) => relative(join(root, v), dest) === '')) return;
  throw mountError(m, `${JSON.stringify(dest)} cannot be mounted because it is inside /proc`);
}
