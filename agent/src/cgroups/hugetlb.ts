import type { LinuxResources } from '../../../oci/resources.js';
import { writeCgroupFile } from './fs.js';
import type { Controller } from './types.js';

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
