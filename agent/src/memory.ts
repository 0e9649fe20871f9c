import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from 'pino';
import type { Native } from './native/types.js';

/** Idle this long after a request before memory is given back. */
const IDLE_MS = 2000;
/**
 * ... and only when the agent grew by this much since the last time. Small:
 * with 8 MiB, an idle agent's RSS sat anywhere in an 8 MiB band above its
 * last collection (40% of a 20 MiB agent), which is both memory a long-lived
 * pod holds for nothing and a reading no soak can tell from a leak
 * (bench/soak.ts). Two collections of a ~10 MB heap cost the idle guest
 * tens of milliseconds.
 */
const GROWTH_BYTES = 1 << 20;

/**
 * Gives memory back to the guest once the agent is idle after a burst of
 * requests. Measured (bench/agent-refusals.ts): 100k refused requests, some
 * with megabyte ids, left the agent 70 MB larger, though its JS heap was
 * back at 10 MB. V8 collects only when it next allocates enough, and glibc
 * keeps what was freed for reuse, so an idle agent never shrank. A full
 * collection and malloc_trim(3) bring it back; they run only after requests,
 * when the agent has been idle IDLE_MS and grew GROWTH_BYTES, so a busy or
 * idle agent pays nothing.
 */
export class MemoryReclaimer {
  private timer: NodeJS.Timeout | undefined;
  private lastRequest = 0;
  private baseline = process.memoryUsage.rss();
  private readonly gc: () => void;

  constructor(
    private readonly native: Native,
    private readonly log: Logger,
  ) {
    // --expose-gc on the command line is not needed: the flag takes effect
    // for contexts made after it is set.
    setFlagsFromString('--expose-gc');
    this.gc = runInNewContext('gc') as () => void;
  }

  /** Called at the end of every request. */
  requestDone(): void {
    this.lastRequest = Date.now();
    this.timer ??= setTimeout(() => {
      this.check();
    }, IDLE_MS).unref();
  }

  private check(): void {
    this.timer = undefined;
    const idleFor = Date.now() - this.lastRequest;
    if (idleFor < IDLE_MS) {
      this.timer = setTimeout(() => {
        this.check();
      }, IDLE_MS - idleFor).unref();
      return;
    }
    const before = process.memoryUsage.rss();
    if (before - this.baseline < GROWTH_BYTES) return;
    // Twice: the first collection finalizes what frees external memory
    // (buffers of the requests), the second collects what that released.
    this.gc();
    this.gc();
    this.native.trimMemory();
    this.baseline = process.memoryUsage.rss();
    // What is left after the collection, by kind: the JS heap, memory V8
    // holds for buffers (external), and the rest of the RSS (native: glibc,
    // libuv, nghttp2, koffi), to tell a growth's kind from the console log.
    const { heapUsed, external } = process.memoryUsage();
    this.log.debug({ before, after: this.baseline, heapUsed, external }, 'memory given back');
  }
}
