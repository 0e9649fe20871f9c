import { writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';

const DROP_CACHES = '/proc/sys/vm/drop_caches';

let running: Promise<void> = Promise.resolve();

/**
 * Evicts the guest's unused dentries and inodes (drop_caches 2:
 * Documentation/admin-guide/sysctl/vm.rst) once a container is removed.
 * Every inode the guest keeps of the shared file system pins an open fd
 * in the host's virtiofsd (a FUSE lookup count, released by FORGET when the
 * inode is evicted), so a removed container's rootfs would keep ~12 host
 * fds each until memory pressure came: a pod of many short-lived containers
 * ran virtiofsd out of fds. Only unused entries go: the cost is re-lookups.
 * Runs in the background, one at a time, and never fails the caller.
 */
export function dropUnusedInodes(log: Logger): void {
  running = running.then(async () => {
    try {
      await writeFile(DROP_CACHES, '2');
    } catch (err) {
      log.warn({ err }, 'dropping unused dentries and inodes failed');
    }
  });
}
