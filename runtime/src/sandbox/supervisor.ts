import { writeFileSync } from 'node:fs';
import { describeExit, type Child } from './vm/child.js';

/** How long deaths are gathered before the cause is chosen among them. */
const SETTLE_MS = 300;

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
  #deaths: { reason: string; name: string; rank: number }[] = [];

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
    void child.exited.then((s) => {
      this.#children.delete(child);
      this.#writePids();
      if (this.#stopping) return;
      // What it said last explains an exit, not a kill (then it is whatever came before).
      const said = s.signal === null ? lastLine(child.stderr) : undefined;
      const reason = `${name} (pid ${child.pid}) ${describeExit(s)}${said ? `: ${said}` : ''}`;
      this.#deaths.push({ reason, name, rank });
      if (this.#deaths.length > 1) return;
      setTimeout(() => {
        const cause = this.#deaths.reduce((a, b) => (b.rank > a.rank ? b : a));
        this.#onDeath(cause.reason, cause.name);
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

/** The last non-empty line a process wrote to stderr: often why it ended. */
function lastLine(text: string): string | undefined {
  const lines = text.split('\n').map((l) => l.trim());
  for (let i = lines.length - 1; i >= 0; i--) if (lines[i]) return lines[i]?.slice(0, 300);
  return undefined;
}
