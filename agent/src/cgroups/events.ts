import { watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { parseFlatKeyed, readCgroupFile } from './fs.js';

export interface OomEvent {
  containerId: string;
  type: 'oom';
  timeMs: number;
}

interface Watched {
  dir: string;
  oomKills: number;
  watcher: FSWatcher | undefined;
  checking: Promise<void>;
}

/**
 * Watches each container's memory.events and reports every rise of oom_kill
 * (the kernel notifies the file on every change, so inotify sees it, as
 * runc's v2 OOM notifier and the Kata agent rely on).
 */
export class OomWatcher {
  private readonly watched = new Map<string, Watched>();

  constructor(private readonly emit: (event: OomEvent) => void) {}

  /** Starts watching; the current count is the baseline. */
  async add(containerId: string, dir: string): Promise<void> {
    const w: Watched = {
      dir,
      oomKills: await this.count(dir),
      watcher: undefined,
      checking: Promise.resolve(),
    };
    this.watched.set(containerId, w);
    try {
      w.watcher = watch(join(dir, 'memory.events'), () => {
        this.check(containerId);
      });
      w.watcher.on('error', () => undefined);
    } catch {
      // No memory controller in this cgroup: there are no OOM kills to see.
    }
  }

  /** Looks once more (an event may race the removal) and stops watching. */
  async remove(containerId: string): Promise<void> {
    const w = this.watched.get(containerId);
    if (w === undefined) return;
    this.check(containerId);
    await w.checking;
    w.watcher?.close();
    this.watched.delete(containerId);
  }

  /** Serialised per container so two notifications never report one kill twice. */
  private check(containerId: string): void {
    const w = this.watched.get(containerId);
    if (w === undefined) return;
    w.checking = w.checking.then(async () => {
      const now = await this.count(w.dir);
      for (; w.oomKills < now; w.oomKills++) {
        this.emit({ containerId, type: 'oom', timeMs: Date.now() });
      }
    });
  }

  private async count(dir: string): Promise<number> {
    try {
      return (
        parseFlatKeyed((await readCgroupFile(dir, 'memory.events')) ?? '').get('oom_kill') ?? 0
      );
    } catch {
      return 0;
    }
  }
}
