import { writeFileSync } from 'node:fs';
import { describeExit, type Child, type ExitStatus } from './vm/child.js';

/** How long deaths are gathered before the cause is chosen among them. */
const SETTLE_MS = 300;

/**
 * A stderr line written this long before an exit, or later, explains it;
 * an older one is the process's ordinary chatter. virtiofsd's first process
 * exits 1 without a word when its sandboxed child dies (it waits in
 * waitpid(2), QEMU's "virtiofsd: move to a new pid namespace"), and its
 * last line was then "fv_queue_thread: Start for queue 0 kick_fd 11" from
 * the boot.
 */
const SAID_WITHIN_MS = 1000;

/** One host process of a sandbox, as the pids file lists it. */
export interface SupervisedPid {
  /** What it is: "qemu", "virtiofsd", "ip monitor". */
  name: string;
  pid: number;
}

/**
 * The one watch over every host process a sandbox process runs (QEMU,
 * virtiofsd, the namespace watcher, whatever comes next): each is adopted
 * here, its pid is written to the VM directory's pids file (so that
 * `delete --force` can kill them when the sandbox process does not answer),
 * and the first one to end while the sandbox is not stopping calls `onDeath`
 * once with a reason naming the process and how it ended. A QEMU death is
 * one case of it, not a case of its own.
 */
export class Supervisor {
  readonly #pidsFile: string;
  readonly #onDeath: (reason: string, name: string) => void;
  readonly #children = new Map<Child, string>();
  #stopping = false;
  #deaths: { child: Child; status: ExitStatus; at: number; name: string; rank: number }[] = [];

  constructor(pidsFile: string, onDeath: (reason: string, name: string) => void) {
    this.#pidsFile = pidsFile;
    this.#onDeath = onDeath;
  }

  /**
   * Watches `child` from now on; `name` is how a stop reason calls it. When
   * several die together, the one of highest `rank` is the cause: QEMU's
   * end makes virtiofsd exit too, and may be seen second.
   */
  adopt(name: string, child: Child, rank = 0): void {
    this.#children.set(child, name);
    this.#writePids();
    void child.exited.then((status) => {
      this.#children.delete(child);
      this.#writePids();
      if (this.#stopping) return;
      this.#deaths.push({ child, status, at: Date.now(), name, rank });
      if (this.#deaths.length > 1) return;
      // Read after the settling: stderr's last chunk may come after 'exit'.
      setTimeout(() => {
        const cause = this.#deaths.reduce((a, b) => (b.rank > a.rank ? b : a));
        this.#onDeath(reasonOf(cause), cause.name);
      }, SETTLE_MS);
    });
  }

  /** From now on an exit is expected: the sandbox is being torn down. */
  stopping(): void {
    this.#stopping = true;
  }

  /** The processes watched now. */
  pids(): SupervisedPid[] {
    return [...this.#children].map(([child, name]) => ({ name, pid: child.pid }));
  }

  #writePids(): void {
    try {
      writeFileSync(this.#pidsFile, JSON.stringify(this.pids()));
    } catch {
      // The VM directory is going away with the sandbox.
    }
  }
}

/** "virtiofsd (pid 7) exit status 1: <what it said as it ended>". */
function reasonOf(d: { child: Child; status: ExitStatus; at: number; name: string }): string {
  // What it said last explains an exit, not a kill (then it is whatever came before).
  const said =
    d.status.signal === null && d.child.stderrAt >= d.at - SAID_WITHIN_MS
      ? lastLine(d.child.stderr)
      : undefined;
  return `${d.name} (pid ${d.child.pid}) ${describeExit(d.status)}${said ? `: ${said}` : ''}`;
}

/** The last non-empty line a process wrote to stderr: often why it ended. */
function lastLine(text: string): string | undefined {
  const lines = text.split('\n').map((l) => l.trim());
  for (let i = lines.length - 1; i >= 0; i--) if (lines[i]) return lines[i]?.slice(0, 300);
  return undefined;
}
