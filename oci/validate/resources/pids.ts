import type { PidsResources } from '../../resources.js';
import { int, knownKeys, object } from '../fields.js';

/**
 * linux.resources.pids; undefined when unset. A limit of 0 is "unset" (runc's
 * fs2 isPidsSet: `runc update` and Docker send 0 for "leave it"), -1 is
 * unlimited.
 */
export function validatePids(v: unknown, field: string): PidsResources | undefined {
  const o = object(v, field);
  knownKeys(o, ['limit'], field);
  const limit = int(o['limit'], `${field}.limit`, -1);
  return limit === 0 ? undefined : { limit };
}
