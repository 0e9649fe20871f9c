import type { LinuxResources, PidsResources } from '../../../oci/resources.js';
import { limitOf, numberOf, readCgroupFile, writeCgroupFile } from './fs.js';
import type { Controller } from './types.js';
import type { PidsStats } from '../../../proto/generated/agent.js';
import { F, int, knownKeys, object } from './fields.js';

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

/** linux.resources.pids, checked. */
export function validatePids(v: unknown): PidsResources {
  const field = `${F}.pids`;
  const o = object(v, field);
  knownKeys(o, ['limit'], field);
  return { limit: int(o['limit'], `${field}.limit`, -1) };
}

export async function pidsStats(dir: string): Promise<PidsStats | undefined> {
  const current = await readCgroupFile(dir, 'pids.current');
  if (current === undefined) return undefined;
  return { current: numberOf(current), limit: limitOf(await readCgroupFile(dir, 'pids.max')) };
}
