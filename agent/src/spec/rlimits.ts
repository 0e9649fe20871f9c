// process.rlimits: RLIMIT_* names to setrlimit(2) resource numbers.
import type { Rlimit } from '../../../oci/spec.js';
import { RLIMIT_NAMES } from '../../../oci/validate/index.js';
import type { RlimitSpec } from '../native/types.js';

const U64_MAX = 0xffffffffffffffffn;

/** JSON cannot carry 2^64-1 exactly (it arrives as 2^64): clamp to RLIM_INFINITY. */
function limit(v: number): bigint {
  const b = BigInt(v);
  return b > U64_MAX ? U64_MAX : b;
}

/** Validated rlimits (oci/validate) as resource numbers and limits. */
export function toRlimits(rlimits: readonly Rlimit[]): RlimitSpec[] {
  return rlimits.map((r) => ({
    resource: RLIMIT_NAMES.indexOf(r.type),
    soft: limit(r.soft),
    hard: limit(r.hard),
  }));
}
