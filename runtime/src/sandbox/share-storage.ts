import type { Storage } from '../../../proto/generated/agent.js';
import type { SharedFs } from './vm/config.js';
import { SHARED_TAG } from './vm-dir.js';

/**
 * The 9p mount options, as Kata mounts its `virtio-9p` share:
 * - `trans=virtio`, `version=9p2000.L`: the Linux dialect over QEMU's device;
 * - `cache=mmap`: no page cache beyond what mmap needs, so the host's
 *   changes show at once (as with virtio-fs, which kapsel mounts without a
 *   cache) and shared writable mappings work;
 * - `access=client`: the guest's kernel checks permissions, as it does for
 *   any local file system; QEMU (passthrough) keeps the owners;
 * - `posixacl`: POSIX ACLs, checked by the guest (with access=client);
 * - `msize`: the largest message, 256 KiB (the default 8 KiB makes every
 *   large read and write 32 round trips).
 * Documentation/filesystems/9p.rst lists them.
 */
export const NINEP_MOUNT_OPTIONS: readonly string[] = [
  'trans=virtio',
  'version=9p2000.L',
  'cache=mmap',
  'access=client',
  'posixacl',
  'msize=262144',
];

/**
 * The storage a container's CreateContainer asks the agent to mount at
 * `mountPoint`: the sandbox's share, over the device its VM has (the
 * agent's storage drivers `virtiofs` and `9p`, as Kata names them).
 */
export function shareStorage(fs: SharedFs, mountPoint: string): Storage {
  return fs === 'virtio-9p'
    ? { driver: '9p', source: SHARED_TAG, mountPoint, options: [...NINEP_MOUNT_OPTIONS] }
    : { driver: 'virtiofs', source: SHARED_TAG, mountPoint, options: [] };
}
