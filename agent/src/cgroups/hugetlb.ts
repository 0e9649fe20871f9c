import type { HugepageLimit, LinuxResources } from '../../../oci/resources.js';
import { writeCgroupFile } from './fs.js';
import type { Controller } from './types.js';
import { invalidArgument } from '../errors.js';
import { array, F, int, knownKeys, object } from './fields.js';

/** hugetlb.<pageSize>.max for each limit; a page size the kernel lacks is refused by name. */
export const hugetlbController: Controller = {
  name: 'hugetlb',
  async apply(resources: LinuxResources, dir: string): Promise<void> {
    for (const [i, h] of (resources.hugepageLimits ?? []).entries()) {
      await writeCgroupFile(
        dir,
        `hugetlb.${h.pageSize}.max`,
        String(h.limit),
        `linux.resources.hugepageLimits[${i}]`,
      );
    }
  },
};

/** linux.resources.hugepageLimits, checked. */
export function validateHugepages(v: unknown): HugepageLimit[] {
  const field = `${F}.hugepageLimits`;
  return array(v, field).map((h, i) => {
    const f = `${field}[${i}]`;
    const o = object(h, f);
    knownKeys(o, ['pageSize', 'limit'], f);
    const pageSize = o['pageSize'];
    if (typeof pageSize !== 'string' || !/^\d+[KMG]B$/.test(pageSize)) {
      throw invalidArgument(`${f}.pageSize: must look like "2MB", got ${JSON.stringify(pageSize)}`);
    }
    return { pageSize, limit: int(o['limit'], `${f}.limit`, 0) };
  });
}
