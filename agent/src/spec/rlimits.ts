// process.rlimits: RLIMIT_* names to setrlimit(2) resource numbers.
import type { Rlimit } from '../../../oci/spec.js';
import { invalidArgument } from '../errors.js';
import type { RlimitSpec } from '../native/types.js';

/** asm-generic/resource.h, in resource-number order. */
const RLIMITS = [
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

const U64_MAX = 0xffffffffffffffffn;

/** JSON cannot carry 2^64-1 exactly (it arrives as 2^64): clamp to RLIM_INFINITY. */
function limit(v: unknown, field: string): bigint {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || !Number.isInteger(v)) {
    throw invalidArgument(`${field}: must be a non-negative integer, got ${JSON.stringify(v)}`);
  }
  const b = BigInt(v);
  return b > U64_MAX ? U64_MAX : b;
}

export function toRlimits(rlimits: readonly Rlimit[], field: string): RlimitSpec[] {
  const seen = new Set<number>();
  return rlimits.map((r, i) => {
    const f = `${field}[${i}]`;
    const resource = RLIMITS.indexOf(r.type);
    if (resource < 0) throw invalidArgument(`${f}.type: unknown rlimit ${JSON.stringify(r.type)}`);
    if (seen.has(resource)) throw invalidArgument(`${f}.type: ${r.type} given twice`);
    seen.add(resource);
    const soft = limit(r.soft, `${f}.soft`);
    const hard = limit(r.hard, `${f}.hard`);
    if (soft > hard) throw invalidArgument(`${f}: soft limit ${soft} exceeds hard limit ${hard}`);
    return { resource, soft, hard };
  });
}
