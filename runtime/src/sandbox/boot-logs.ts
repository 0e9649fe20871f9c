import { copyFile, readdir, rm, rmdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { mkdirAll } from '../../../oci/fs/mkdir-all.js';
import { vmDirLayout } from './vm-dir.js';

/*
 * The logs of a sandbox that never became ready. A failed create removes the
 * container and its VM directory, as runc leaves nothing of a failed
 * create; the guest's console says why it did not come up, so it is copied
 * out first, into a bounded place under --root that `delete` of the id
 * cleans (docs/faults.md).
 */

/** How many failed boots' logs are kept; the oldest go first. */
export const KEPT_FAILED_BOOTS = 8;

/** `<root>/.vm/failed/<vm dir's name>`: where the logs of the VM dir `vmDir` are kept. */
export function bootLogsDirOf(vmDir: string): string {
  return join(dirname(vmDir), 'failed', basename(vmDir));
}

/**
 * Copies the VM directory's console.log and monitor.log out before the
 * directory goes (or, given `fromDir`, the copies a faulted sandbox left in
 * a container's state directory, before a foreground `run` deletes it), and
 * drops the oldest kept beyond KEPT_FAILED_BOOTS. Returns the text naming
 * them for an error message, or '' when there was nothing to keep. Never
 * throws: it runs on the way out of a failure.
 */
export async function keepBootLogs(vmDir: string, fromDir?: string): Promise<string> {
  const from =
    fromDir === undefined
      ? vmDirLayout(vmDir)
      : { console: join(fromDir, 'console.log'), log: join(fromDir, 'monitor.log') };
  const to = bootLogsDirOf(vmDir);
  try {
    await stat(from.console);
    await rm(to, { recursive: true, force: true });
    await mkdirAll(to, 0o700);
    await copyFile(from.console, join(to, 'console.log'));
    await copyFile(from.log, join(to, 'monitor.log')).catch(() => undefined);
  } catch {
    return '';
  }
  await prune(dirname(to)).catch(() => undefined);
  return `the VM's logs are kept in ${join(to, 'console.log')} and monitor.log`;
}

/** Removes what bootLogsDirOf keeps for `vmDir` (delete of the id). */
export async function forgetBootLogs(vmDir: string): Promise<void> {
  await rm(bootLogsDirOf(vmDir), { recursive: true, force: true });
  // The last one takes the directory with it.
  await rmdir(dirname(bootLogsDirOf(vmDir))).catch(() => undefined);
}

async function prune(dir: string): Promise<void> {
  const kept = await Promise.all(
    (await readdir(dir)).map(async (name) => ({
      path: join(dir, name),
      mtime: (await stat(join(dir, name))).mtimeMs,
    })),
  );
  kept.sort((a, b) => b.mtime - a.mtime);
  for (const old of kept.slice(KEPT_FAILED_BOOTS)) {
    await rm(old.path, { recursive: true, force: true });
  }
}
