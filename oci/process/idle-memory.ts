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

/** mallopt(3) parameters, glibc's malloc/malloc.h. */
export const M_TRIM_THRESHOLD = -1;
export const M_MMAP_THRESHOLD = -3;
export const M_ARENA_MAX = -8;

/**
 * glibc's default for both thresholds, in bytes, which it then raises on
 * its own (up to 32 MiB) each time a large block is freed. Set, they stay.
 */
const THRESHOLD_BYTES = 128 * 1024;

/**
 * The C library's allocator as a long-lived process tunes it (glibc
 * malloc(3)). Each process passes its own binding: the agent's goes
 * through libkapsel's koffi module, the host's through libc alone.
 */
export interface Malloc {
  /** malloc_trim(3) with pad 0: free pages of every arena back to the kernel. */
  trim(): void;
  /** mallopt(3); throws if it is refused. */
  mallopt(param: number, value: number): void;
}

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
 *
 * Two kinds of fragmentation kept growing even so (smaps read across a
 * 300-lifecycle soak, bench/soak.ts), and are closed here:
 * - V8's old space: a full collection frees objects but keeps their
 *   half-empty pages unless its heuristics choose to compact; the agent's
 *   old space went 7.6 -> 10.2 MB for 6.3 MB of live objects. The idle
 *   collections compact (`--compact-on-every-full-gc` for their duration,
 *   a V8 flag read at each full collection), which empties such pages so
 *   they are released.
 * - glibc's arenas: the sandbox process's thread arenas (libuv's and V8's
 *   workers) grew from ~1 MB to ~1.7 MB each, and malloc_trim(3) gives
 *   back the free chunks inside an arena but not the free top of a thread's
 *   one, which a thread arena keeps up to M_TRIM_THRESHOLD, and glibc
 *   raises that threshold to twice the largest block freed (mallopt(3),
 *   M_MMAP_THRESHOLD: "dynamic"), up to 64 MiB. Fixing both thresholds at
 *   glibc's own starting value turns the raising off. Capping the arenas at
 *   one stops more of them being made; these processes allocate little off
 *   the main thread, so they lose nothing to the shared lock.
 */
export class IdleMemory {
  private timer: NodeJS.Timeout | undefined;
  private lastCall = 0;
  private baseline = process.memoryUsage.rss();
  private readonly gc: () => void;

  constructor(
    private readonly malloc: Malloc,
    private readonly log: Logger,
  ) {
    const options: [string, number, number][] = [
      ['M_ARENA_MAX', M_ARENA_MAX, 1],
      ['M_MMAP_THRESHOLD', M_MMAP_THRESHOLD, THRESHOLD_BYTES],
      ['M_TRIM_THRESHOLD', M_TRIM_THRESHOLD, THRESHOLD_BYTES],
    ];
    for (const [name, param, value] of options) {
      // A process that cannot tune its allocator still works, only larger.
      try {
        malloc.mallopt(param, value);
      } catch (err) {
        log.warn({ err, option: name, value }, 'mallopt refused');
      }
    }
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
    setFlagsFromString('--compact-on-every-full-gc');
    try {
      this.gc();
      this.gc();
    } finally {
      setFlagsFromString('--no-compact-on-every-full-gc');
    }
    this.malloc.trim();
    this.baseline = process.memoryUsage.rss();
    // What is left by kind: the JS heap, memory V8 holds for buffers
    // (external), and the rest of the RSS (native), to tell a growth's kind
    // from the log.
    const { heapUsed, external } = process.memoryUsage();
    this.log.debug({ before, after: this.baseline, heapUsed, external }, 'memory given back');
  }
}
