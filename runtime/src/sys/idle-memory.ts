import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from 'pino';
import { mallocTrim } from './host-native.js';

/** Idle this long after a call before memory is given back, in ms. */
const IDLE_MS = 2000;
/** ... and only when the process grew by this many bytes since the last time. */
const GROWTH_BYTES = 1 << 20;

/**
 * Gives a long-lived process's garbage back to the host once it is idle
 * after calls: the sandbox process lives as long as its pod and relays
 * every call of it, and the shim v2 serves its pod's. V8 collects its old
 * space only when it next allocates enough, so an idle process keeps what
 * its last burst of calls left: over 150 container lifecycles the sandbox
 * process's RSS climbed 65 -> 73 MiB and stayed there while idle
 * (bench/soak.ts). V8 returns the pages a full collection frees to the
 * kernel itself; malloc_trim(3) gives back what the C side freed (each
 * call's connection is an HTTP/2 session of nghttp2's). Over 2000
 * lifecycles the sandbox process's RssAnon went 20 -> 33 MiB while its JS
 * heap stayed at ~11 MB (heap snapshots: only compiled code grew), so the
 * rest was outside V8. The guest agent does the same (agent/src/memory.ts).
 */
export class IdleMemory {
  private timer: NodeJS.Timeout | undefined;
  private lastCall = 0;
  private baseline = process.memoryUsage.rss();
  private readonly gc: () => void;

  constructor(private readonly log: Logger) {
    // The flag takes effect for contexts made after it is set, so the
    // process needs no --expose-gc on its command line.
    setFlagsFromString('--expose-gc');
    this.gc = runInNewContext('gc') as () => void;
  }

  /** Called when a call has ended, answered or not. */
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
    mallocTrim();
    this.baseline = process.memoryUsage.rss();
    this.log.debug({ before, after: this.baseline }, 'memory given back');
  }
}
