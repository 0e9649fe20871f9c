import { watch } from 'node:fs';
import { join } from 'node:path';
import { AgentError } from '../errors.js';
import { parseFlatKeyed, readCgroupFile, writeCgroupFile } from './fs.js';

/** How long a freeze may take before it is reported as failed. */
export const FREEZE_TIMEOUT_MS = 10_000;
/** cgroup.events is watched (the kernel notifies it); this poll is the backstop. */
const POLL_MS = 100;

async function frozenState(dir: string): Promise<boolean | undefined> {
  const events = await readCgroupFile(dir, 'cgroup.events');
  if (events === undefined) return undefined;
  return parseFlatKeyed(events).get('frozen') === 1;
}

/**
 * Writes cgroup.freeze and waits until cgroup.events says "frozen 1" (or 0):
 * the write only asks, the kernel freezes each task as it next leaves the
 * kernel, and an uninterruptible task can take a while (runc waits the same
 * way). Gives up after timeoutMs, thawing again on a failed freeze so the
 * container is not left half frozen.
 */
export async function setFrozen(
  dir: string,
  frozen: boolean,
  timeoutMs = FREEZE_TIMEOUT_MS,
): Promise<void> {
  await writeCgroupFile(dir, 'cgroup.freeze', frozen ? '1' : '0', 'cgroup.freeze');
  const deadline = Date.now() + timeoutMs;
  const ac = new AbortController();
  let wake: () => void = () => undefined;
  const watcher = watch(join(dir, 'cgroup.events'), { signal: ac.signal }, () => {
    wake();
  });
  watcher.on('error', () => undefined);
  try {
    for (;;) {
      const state = await frozenState(dir);
      if (state === frozen) return;
      if (state === undefined) {
        throw new AgentError('not-found', `${join(dir, 'cgroup.events')} is gone`);
      }
      if (Date.now() >= deadline) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, POLL_MS);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    ac.abort();
  }
  if (frozen) await writeCgroupFile(dir, 'cgroup.freeze', '0', 'cgroup.freeze');
  throw new AgentError(
    'internal',
    `${frozen ? 'freezing' : 'thawing'} ${dir}: cgroup.events did not show frozen ${frozen ? 1 : 0} within ${timeoutMs} ms`,
  );
}
