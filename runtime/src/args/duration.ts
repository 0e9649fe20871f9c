import { RuntimeError } from '../sys/errors.js';

/**
 * A Go duration of one unit as runc's flags and Kata's configuration take
 * them (5s, 500ms, 1m, 1h; Go's time.ParseDuration), in ms; undefined for
 * anything else.
 */
export function goDurationMs(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s.trim());
  if (m === null) return undefined;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
}

/** `--interval` of `kapsel events`, as runc parses it. */
export function parseInterval(s: string): number {
  const ms = goDurationMs(s);
  if (ms === undefined) throw new RuntimeError(`invalid --interval ${JSON.stringify(s)}`);
  if (ms <= 0) throw new RuntimeError('duration interval must be greater than 0');
  return ms;
}
