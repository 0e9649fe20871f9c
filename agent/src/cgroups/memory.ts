import type { LinuxResources, MemoryResources } from '../../../oci/resources.js';
import { invalidArgument } from '../errors.js';
import { limitOf, numberOf, parseFlatKeyed, readCgroupFile, writeCgroupFile } from './fs.js';
import type { Controller } from './types.js';
import type { MemoryStats } from '../../../proto/generated/agent.js';
import { F, knownKeys, object, optInt } from './fields.js';

/** runc's numToStr: 0 is "unset", -1 is "max". */
export function limitValue(n: number | undefined): string | undefined {
  if (n === undefined || n === 0) return undefined;
  return n === -1 ? 'max' : String(n);
}

/**
 * OCI's swap is memory+swap (a cgroup v1 notion); memory.swap.max is swap
 * alone. runc's ConvertMemorySwapToCgroupV2Value: -1 is max, 0 unset, and
 * an unlimited memory with unset swap makes swap unlimited too.
 */
export function swapMaxValue(mem: MemoryResources): string | undefined {
  const memory = mem.limit ?? 0;
  const swap = mem.swap ?? 0;
  if (memory === -1 && swap === 0) return 'max';
  if (swap === -1) return 'max';
  if (swap === 0) return undefined;
  if (memory === 0 || memory === -1) {
    throw invalidArgument(
      'linux.resources.memory.swap: a swap limit needs a memory limit (memory.limit)',
    );
  }
  if (swap < memory) {
    throw invalidArgument(
      `linux.resources.memory.swap: memory+swap (${swap}) must be >= memory.limit (${memory})`,
    );
  }
  return String(swap - memory);
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

/** linux.resources.memory, checked; the swap arithmetic is checked too. */
export function validateMemory(v: unknown): MemoryResources {
  const field = `${F}.memory`;
  const o = object(v, field);
  knownKeys(
    o,
    [
      'limit',
      'reservation',
      'swap',
      'kernel',
      'kernelTCP',
      'swappiness',
      'disableOOMKiller',
      'useHierarchy',
      'checkBeforeUpdate',
    ],
    field,
  );
  const out: MemoryResources = {};
  const set = (k: 'limit' | 'reservation' | 'swap'): void => {
    const n = optInt(o, k, field, -1);
    if (n !== undefined) out[k] = n;
  };
  set('limit');
  set('reservation');
  set('swap');
  // Kernel memory is accounted with the rest on cgroup v2; runc ignores it.
  optInt(o, 'kernel', field, -1);
  if (optInt(o, 'kernelTCP', field, -1) !== undefined && o['kernelTCP'] !== 0) {
    throw invalidArgument(`${field}.kernelTCP: not supported on cgroup v2`);
  }
  // cgroup v2 has no per-cgroup swappiness file; any valid value is what
  // the guest does anyway (runc accepts it the same way).
  optInt(o, 'swappiness', field, 0, 100);
  if (o['disableOOMKiller'] !== undefined && typeof o['disableOOMKiller'] !== 'boolean') {
    throw invalidArgument(`${field}.disableOOMKiller: must be a boolean`);
  }
  if (o['disableOOMKiller'] === true) {
    throw invalidArgument(`${field}.disableOOMKiller: cgroup v2 cannot disable the OOM killer`);
  }
  swapMaxValue(out);
  return out;
}

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
