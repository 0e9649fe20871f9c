import { RuntimeError } from '../sys/errors.js';

/** Go durations as runc takes them: 5s, 500ms, 1m. */
export function parseInterval(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s);
  if (m === null) throw new RuntimeError(`invalid --interval ${JSON.stringify(s)}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  const ms = Number(m[1]) * unit;
  if (ms <= 0) throw new RuntimeError('duration interval must be greater than 0');
  return ms;
}
