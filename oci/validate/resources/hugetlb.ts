import type { HugepageLimit } from '../../resources.js';
import { SpecError } from '../error.js';
import { array, int, knownKeys, object } from '../fields.js';

/** linux.resources.hugepageLimits: "2MB"-style page sizes and byte limits. */
export function validateHugepages(v: unknown, field: string): HugepageLimit[] {
  if (v === null) return [];
  return array(v, field).map((h, i) => {
    const f = `${field}[${i}]`;
    const o = object(h, f);
    knownKeys(o, ['pageSize', 'limit'], f);
    const pageSize = o['pageSize'];
    if (typeof pageSize !== 'string' || !/^\d+[KMG]B$/.test(pageSize)) {
      throw new SpecError(`${f}.pageSize`, `must look like "2MB", got ${JSON.stringify(pageSize)}`);
    }
    return { pageSize, limit: int(o['limit'], `${f}.limit`, 0) };
  });
}
