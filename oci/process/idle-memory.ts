import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from 'pino';

/*
 * One idle-time memory giver for the long-lived Node processes of both
 * halves (oci/ is what runtime/ and agent/ may both import): the guest
 * agent, the sandbox process and the containerd shim v2.
 */

/** Idle this long after a call before memory is given back, in ms. */
const IDLE_MS = 2000;
/**
 * ... and only when the process grew by this many bytes since the last
 * time. Small: with 8 MiB, an idle agent's RSS sat anywhere in an 8 MiB
 * band above its last collection (40% of a 20 MiB agent), which is both
 * memory a long-lived pod holds for nothing and a reading no soak can tell
 * from a leak (bench/soak.ts). Two collections of a ~10 MB heap cost an
 * idle guest tens of milliseconds.
 */
const GROWTH_BYTES = 1 << 20;

/**
 * Gives memory back once the process is idle after a burst of calls. V8
 * collects its old space only when it next allocates enough, and glibc
 * keeps what was freed for reuse, so an idle process never shrank:
 * - 100k refused requests, some with megabyte ids, left the agent 70 MB
 *   larger though its JS heap was back at 10 MB (bench/agent-refusals.ts);
 * - over 2000 lifecycles the sandbox process's RssAnon went 20 -> 33 MiB
 *   while its JS heap stayed ~11 MB (heap snapshots: only compiled code
 *   grew), the rest being the C side's (nghttp2, one session per CLI
 *   connection).
 * Two full collections and `trim` (malloc_trim(3)) bring it back. They run
 * only after calls, when the process has been idle IDLE_MS and grew
 * GROWTH_BYTES, so a busy or an idle process pays nothing.
 */
export class IdleMemory {
  private timer: NodeJS.Timeout | undefined;
  private lastCall = 0;
  private baseline = process.memoryUsage.rss();
  private readonly gc: () => void;

  constructor(
    private readonly trim: () => void,
    private readonly log: Logger,
  ) {
    // The flag takes effect for contexts made after it is set, so the
    // process needs no --expose-gc on its command line.
    setFlagsFromString('--expose-gc');
    this.gc = runInNewContext('gc') as () => void;
  }

  /** Called when a call has ended, answered or refused. */
  callDone(): void {
    this.lastCall = Date.now();
    this.timer ??= setTimeout(() => {
      this.check();
    }, IDLE_MS).unref();
  }

  private check(): void {
    this.timer = undefined;
    const idleFor = Date.now() - this.lastCall;
    if (idleFor < IDLE_MS) {
      this.timer = setTimeout(() => {
        this.check();
      }, IDLE_MS - idleFor).unref();
      return;
    }
    const before = process.memoryUsage.rss();
    if (before - this.baseline < GROWTH_BYTES) return;
    // Twice: the first runs the finalizers that free the calls' buffers,
    // the second collects what they held.
    this.gc();
    this.gc();
    this.trim();
    this.baseline = process.memoryUsage.rss();
    // What is left by kind: the JS heap, memory V8 holds for buffers
    // (external), and the rest of the RSS (native), to tell a growth's kind
    // from the log.
    const { heapUsed, external } = process.memoryUsage();
    this.log.debug({ before, after: this.baseline, heapUsed, external }, 'memory given back');
  }
}
