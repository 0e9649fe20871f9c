import type { LinuxResources } from '../../../oci/resources.js';
import { limitOf, numberOf, readCgroupFile, writeCgroupFile } from './fs.js';
import type { Controller } from './types.js';
import type { PidsStats } from '../../../proto/generated/agent.js';

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

export async function pidsStats(dir: string): Promise<PidsStats | undefined> {
  const current = await readCgroupFile(dir, 'pids.current');
  if (current === undefined) return undefined;
  return { current: numberOf(current), limit: limitOf(await readCgroupFile(dir, 'pids.max')) };
}
