import { SpecError } from './error.js';
import { array, knownKeys, object } from './fields.js';

/** asm-generic/resource.h, in resource-number order (RLIMIT_CPU is 0). */
export const RLIMIT_NAMES: readonly string[] = [
  'RLIMIT_CPU',
  'RLIMIT_FSIZE',
  'RLIMIT_DATA',
  'RLIMIT_STACK',
  'RLIMIT_CORE',
  'RLIMIT_RSS',
  'RLIMIT_NPROC',
  'RLIMIT_NOFILE',
  'RLIMIT_MEMLOCK',
  'RLIMIT_AS',
  'RLIMIT_LOCKS',
  'RLIMIT_SIGPENDING',
  'RLIMIT_MSGQUEUE',
  'RLIMIT_NICE',
  'RLIMIT_RTPRIO',
  'RLIMIT_RTTIME',
];

/** A limit: JSON carries 2^64-1 (RLIM_INFINITY) inexactly, so any non-negative integer. */
function limit(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || !Number.isInteger(v)) {
    throw new SpecError(field, `must be a non-negative integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** process.rlimits: known types, each once, soft <= hard (runc refuses the same). */
export function validateRlimits(v: unknown, field: string): void {
  const seen = new Set<string>();
  array(v, field).forEach((r, i) => {
    const f = `${field}[${i}]`;
    const o = object(r, f);
    knownKeys(o, ['type', 'soft', 'hard'], f);
    const type = o['type'];
    if (typeof type !== 'string' || !RLIMIT_NAMES.includes(type)) {
      throw new SpecError(`${f}.type`, `unknown rlimit ${JSON.stringify(type)}`);
    }
    if (seen.has(type)) throw new SpecError(`${f}.type`, `${type} given twice`);
    seen.add(type);
    const soft = limit(o['soft'], `${f}.soft`);
    const hard = limit(o['hard'], `${f}.hard`);
    if (BigInt(soft) > BigInt(hard)) {
      throw new SpecError(f, `soft limit ${BigInt(soft)} exceeds hard limit ${BigInt(hard)}`);
    }
  });
}
