export { parseCpuList } from '../../../oci/validate/index.js';
import type { LinuxResources } from '../../../oci/resources.js';
import { writeCgroupFile } from './fs.js';
import type { Controller } from './types.js';

/** cpuset.cpus and cpuset.mems. */
export const cpusetController: Controller = {
  name: 'cpuset',
  async apply(resources: LinuxResources, dir: string): Promise<void> {
    const cpu = resources.cpu;
    if (cpu === undefined) return;
    if (cpu.cpus !== undefined && cpu.cpus !== '') {
      await writeCgroupFile(dir, 'cpuset.cpus', cpu.cpus, 'linux.resources.cpu.cpus');
    }
    if (cpu.mems !== undefined && cpu.mems !== '') {
      await writeCgroupFile(dir, 'cpuset.mems', cpu.mems, 'linux.resources.cpu.mems');
    }
  },
};
