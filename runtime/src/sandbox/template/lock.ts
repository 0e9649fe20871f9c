import { open, readFile, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

const POLL_MS = 200;

/** Whether `pid` names a live process (kill(pid, 0): EPERM is alive too). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * An exclusive lock between processes: a file made with O_EXCL holding the
 * owner's pid. A lock whose owner has died (a kapsel killed mid-create) is
 * taken over. Node has no flock(2); O_EXCL is atomic on local file systems.
 * Two waiters taking over the same dead owner's lock at once could both
 * win; that costs one template boot too many, not a wrong template: a
 * template is published by one atomic rename (store.ts).
 */
export class PidLock {
  private constructor(readonly path: string) {}

  /** Resolves with the lock once this process holds it; `done()` is polled while waiting and ends the wait with undefined when true. */
  static async acquire(
    path: string,
    done: () => Promise<boolean>,
    opts: { signal?: AbortSignal; timeoutMs: number },
  ): Promise<PidLock | undefined> {
    const deadline = Date.now() + opts.timeoutMs;
    for (;;) {
      opts.signal?.throwIfAborted();
      if (await done()) return undefined;
      try {
        const fh = await open(path, 'wx', 0o600);
        await fh.writeFile(String(process.pid));
        await fh.close();
        return new PidLock(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new Error(`take the template lock ${path}: ${(err as Error).message}`, {
            cause: err,
          });
        }
      }
      const owner = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      // An empty file is a lock being written: its owner is alive.
      if (Number.isInteger(owner) && owner > 0 && !alive(owner)) {
        await rm(path, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `take the template lock ${path}: held by pid ${owner} for more than ${opts.timeoutMs} ms`,
        );
      }
      await sleep(POLL_MS, undefined, opts.signal ? { signal: opts.signal } : {});
    }
  }

  async release(): Promise<void> {
    await rm(this.path, { force: true });
  }
}
