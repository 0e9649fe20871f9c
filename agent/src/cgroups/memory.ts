export { swapMaxValue } from '../../../oci/validate/index.js';
import { swapMaxValue } from '../../../oci/validate/index.js';
import type { LinuxResources } from '../../../oci/resources.js';
import { limitOf, numberOf, parseFlatKeyed, readCgroupFile, writeCgroupFile } from './fs.js';
import type { Controller } from './types.js';
import type { MemoryStats } from '../../../proto/generated/agent.js';

/** runc's numToStr: 0 is "unset", -1 is "max". */
export function limitValue(n: number | undefined): string | undefined {
  if (n === undefined || n === 0) return undefined;
  return n === -1 ? 'max' : String(n);
}

/** memory.max, memory.low (reservation), memory.swap.max. */
export const memoryController: Controller = {
  name: 'memory',
  async apply(resources: LinuxResources, dir: string): Promise<void> {
    const mem = resources.memory;
    if (mem === undefined) return;
    const swap = swapMaxValue(mem);
    // Swap first, as runc does: lowering memory.max below the current
    // memory.swap.max is fine, the other order can fail transiently.
    if (swap !== undefined) {
      await writeCgroupFile(dir, 'memory.swap.max', swap, 'linux.resources.memory.swap').catch(
        (err: unknown) => {
          // No swap accounting in this kernel: "max" and "0" are what the
          // guest has anyway (runc ignores ENOENT for exactly these two).
          if (swap !== 'max' && swap !== '0') throw err;
        },
      );
    }
    const max = limitValue(mem.limit);
    if (max !== undefined) {
      await writeCgroupFile(dir, 'memory.max', max, 'linux.resources.memory.limit');
    }
    const low = limitValue(mem.reservation);
    if (low !== undefined) {
      await writeCgroupFile(dir, 'memory.low', low, 'linux.resources.memory.reservation');
    }
  },
};

/** memory.current/peak/max, swap, memory.stat as a map, oom_kill from memory.events. */
export async function memoryStats(dir: string): Promise<MemoryStats | undefined> {
  const current = await readCgroupFile(dir, 'memory.current');
  if (current === undefined) return undefined;
  const [peak, max, swapCurrent, swapMax, stat, events] = await Promise.all(
    [
      'memory.peak',
      'memory.max',
      'memory.swap.current',
      'memory.swap.max',
      'memory.stat',
      'memory.events',
    ].map((f) => readCgroupFile(dir, f)),
  );
  return {
    usage: numberOf(current),
    maxUsage: numberOf(peak),
    limit: limitOf(max),
    swapUsage: numberOf(swapCurrent),
    swapLimit: limitOf(swapMax),
    stats: Object.fromEntries(parseFlatKeyed(stat ?? '')),
    oomKills: parseFlatKeyed(events ?? '').get('oom_kill') ?? 0,
  };
}
