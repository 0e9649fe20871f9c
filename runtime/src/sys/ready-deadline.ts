import { settings } from '../config/settings.js';

/*
 * How long anything of kapsel waits for another process to become ready:
 * a sandbox (QEMU, its guest agent, a template another creator makes under
 * its lock), a shim. Without it a boot that never completes left
 * `kapsel create` waiting in "creating" for as long as it was let (issue 11).
 */

/**
 * What a waiter on a process that has its own deadline (the creator of a
 * sandbox process) adds to it before it stops waiting: time for that
 * process to notice, clean up and say why. Past it, the process is taken
 * for hung (stopped, spinning in synchronous code) and killed.
 */
export const REPORT_GRACE_MS = 10_000;

/**
 * The deadline in ms: runtime.ready_timeout of the configuration, or
 * KAPSEL_READY_TIMEOUT (docs/configuration.md), else
 * config/schema.ts DEFAULT_READY_TIMEOUT_MS. Throws ConfigError for a value that is not a
 * positive duration.
 */
export function readyTimeoutMs(): number {
  return settings().runtime.ready_timeout;
}

/** `120 s`, `500 ms`: a deadline as messages name it. */
export function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/**
 * `signal` (may be undefined) that also aborts after `ms`, its reason then
 * an Error `${what} did not become ready within N s (KAPSEL_READY_TIMEOUT)`.
 * `done()` clears the timer.
 */
export function withReadyDeadline(
  what: string,
  ms: number,
  signal?: AbortSignal,
): { signal: AbortSignal; done: () => void } {
  const timer = new AbortController();
  const t = setTimeout(() => {
    timer.abort(
      new Error(
        `${what} did not become ready within ${formatMs(ms)} (runtime.ready_timeout, KAPSEL_READY_TIMEOUT)`,
      ),
    );
  }, ms);
  return {
    signal: signal === undefined ? timer.signal : AbortSignal.any([signal, timer.signal]),
    done: () => {
      clearTimeout(t);
    },
  };
}
