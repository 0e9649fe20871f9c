import { constants } from 'node:os';
import { RuntimeError } from './errors.js';

/** The host's signal table (name to number); the one place names map to numbers. */
const SIGNALS = constants.signals as Readonly<Record<string, number | undefined>>;

/** A signal by name (KILL, SIGKILL) or number, as `runc kill` takes it. */
export function signalNumber(sig: string): number {
  if (/^\d+$/.test(sig)) {
    const n = Number(sig);
    if (n > 0 && n <= 64) return n;
  } else {
    const upper = sig.toUpperCase();
    const n = SIGNALS[upper.startsWith('SIG') ? upper : `SIG${upper}`];
    if (n !== undefined) return n;
  }
  throw new RuntimeError(`invalid signal: ${sig}`);
}

/** The name of signal `n` (SIGTERM for 15), if the host knows it. */
export function signalName(n: number): NodeJS.Signals | undefined {
  return Object.entries(SIGNALS).find(([, v]) => v === n)?.[0] as NodeJS.Signals | undefined;
}

/** Signals a shim (or a foreground run/exec) passes on, as runc's signal handler does. */
export const FORWARDED_SIGNALS = [
  'SIGTERM',
  'SIGINT',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR1',
  'SIGUSR2',
  'SIGALRM',
  'SIGCONT',
] as const satisfies readonly NodeJS.Signals[];

/**
 * Signals whose default action ends a Node process, so a shim can die by
 * them and its waiter sees WIFSIGNALED: SIGHUP, SIGINT, SIGQUIT, SIGABRT,
 * SIGKILL, SIGUSR2, SIGALRM, SIGTERM. (Node handles SIGUSR1 itself.)
 */
export const RAISABLE_SIGNALS: ReadonlySet<NodeJS.Signals> = new Set([
  'SIGHUP',
  'SIGINT',
  'SIGQUIT',
  'SIGABRT',
  'SIGKILL',
  'SIGUSR2',
  'SIGALRM',
  'SIGTERM',
]);
