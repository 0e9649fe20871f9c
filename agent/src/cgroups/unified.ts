import type { LinuxResources } from '../../../oci/resources.js';
import { writeCgroupFile } from './fs.js';
import type { Controller } from './types.js';

/**
 * linux.resources.unified: cgroup v2 files written as given, after the
 * typed fields, so they win where both say something (runc's order).
 * validate.ts has made sure every key is a plain file name.
 */
export const unifiedController: Controller = {
  name: 'unified',
  async apply(resources: LinuxResources, dir: string): Promise<void> {
    for (const [file, value] of Object.entries(resources.unified ?? {})) {
      await writeCgroupFile(dir, file, value, `linux.resources.unified[${JSON.stringify(file)}]`);
    }
  },
};
