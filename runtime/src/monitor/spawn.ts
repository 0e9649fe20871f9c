import { closeSync, openSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { startDetached } from '../detached.js';
import { RuntimeError } from '../errors.js';
import type { VmSize } from '../sizing.js';
import { monitorPaths } from './paths.js';

/**
 * Boots a sandbox: starts its monitor (inside the host network namespace
 * `enter` puts it in) and returns once the agent answers through it.
 */
export async function startMonitor(
  root: string,
  sandboxId: string,
  vmDir: string,
  debug: boolean,
  size: VmSize,
  enter: readonly string[] = [],
): Promise<number> {
  const paths = monitorPaths(vmDir);
  try {
    await mkdir(vmDir, { recursive: false, mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new RuntimeError(`sandbox ${sandboxId} exists already`, 1, { cause: err });
    }
    await mkdir(vmDir, { recursive: true, mode: 0o700 });
  }
  const logFd = openSync(paths.log, 'a');
  try {
    return await startDetached(
      [
        '--root',
        root,
        ...(debug ? ['--debug'] : []),
        '__monitor',
        sandboxId,
        '--memory-mib',
        String(size.memoryMiB),
        '--cpus',
        String(size.cpus),
      ],
      ['ignore', logFd, logFd],
      'start the sandbox',
      enter,
    );
  } finally {
    closeSync(logFd);
  }
}
