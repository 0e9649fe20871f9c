import type { LinuxResources } from '../../../oci/resources.js';
import { writeCgroupFile } from './fs.js';
import type { Controller } from './types.js';

/** pids.max: a positive limit, or "max" for -1 and 0 (runc treats both as unlimited). */
export const pidsController: Controller = {
  name: 'pids',
  async apply(resources: LinuxResources, dir: string): Promise<void> {
    const pids = resources.pids;
    if (pids === undefined) return;
    const value = pids.limit > 0 ? String(pids.limit) : 'max';
    await writeCgroupFile(dir, 'pids.max', value, 'linux.resources.pids.limit');
  },
};
