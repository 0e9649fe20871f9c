import { constants } from 'node:os';
import { RuntimeError } from './errors.js';

/** A signal by name (KILL, SIGKILL) or number, as `runc kill` takes it. */
export function signalNumber(sig: string): number {
  if (/^\d+$/.test(sig)) {
    const n = Number(sig);
    if (n > 0 && n <= 64) return n;
  } else {
    const name = (
      sig.toUpperCase().startsWith('SIG') ? sig.toUpperCase() : `SIG${sig.toUpperCase()}`
    ) as keyof typeof constants.signals;
    const n = constants.signals[name] as number | undefined;
    if (n !== undefined) return n;
  }
  throw new RuntimeError(`invalid signal: ${sig}`);
}
