import { constants } from 'node:os';
import { RuntimeError } from './errors.js';

/** The host's signal table (name to number); the one place names map to numbers. */
const SIGNALS = constants.signals as Readonly<Record<string, number | undefined>>;

/**
 * The names runc 1.1's parseSignal knows (golang.org/x/sys/unix's linux
 * signal list, which has no SIGIOT, SIGPOLL, SIGCLD aliases and no RT
 * names: those go by number).
 */
const RUNC_NAMES = new Set([
  'SIGHUP',
  'SIGINT',
  'SIGQUIT',
  'SIGILL',
  'SIGTRAP',
  'SIGABRT',
  'SIGBUS',
  'SIGFPE',
  'SIGKILL',
  'SIGUSR1',
  'SIGSEGV',
  'SIGUSR2',
  'SIGPIPE',
  'SIGALRM',
  'SIGTERM',
  'SIGSTKFLT',
  'SIGCHLD',
  'SIGCONT',
  'SIGSTOP',
  'SIGTSTP',
  'SIGTTIN',
  'SIGTTOU',
  'SIGURG',
  'SIGXCPU',
  'SIGXFSZ',
  'SIGVTALRM',
  'SIGPROF',
  'SIGWINCH',
  'SIGIO',
  'SIGPWR',
  'SIGSYS',
]);

/** SIGRTMAX on Linux: the kernel's _NSIG - 1. */
const SIGRTMAX = 64;

/**
 * A signal as `runc kill` takes it (runc 1.1 kill.go parseSignal): a
 * decimal number, 0 being the liveness check kill(2) allows and 34..64 the
 * real-time signals; or a name in any case, with or without "SIG".
 * @throws RuntimeError `unknown signal "X"`, runc's words
 */
export function signalNumber(sig: string): number {
  if (/^-?\d+$/.test(sig)) {
    const n = Number(sig);
    // runc hands any integer to kill(2), which refuses these with EINVAL.
    if (n >= 0 && n <= SIGRTMAX) return n;
    throw new RuntimeError(`invalid signal ${sig}: kill: invalid argument`);
  }
  const upper = sig.toUpperCase();
  const name = upper.startsWith('SIG') ? upper : `SIG${upper}`;
  const n = RUNC_NAMES.has(name) ? SIGNALS[name] : undefined;
  if (n !== undefined) return n;
  throw new RuntimeError(`unknown signal ${JSON.stringify(sig)}`);
}

/** The name of signal `n` (SIGTERM for 15), if the host knows it. */
export function signalName(n: number): NodeJS.Signals | undefined {
  return Object.entries(SIGNALS).find(([, v]) => v === n)?.[0] as NodeJS.Signals | undefined;
}

/**
 * Signals a foreground run/exec passes on, as runc's signal handler does
 * (native/host/shim.c forwards the same list).
 */
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
