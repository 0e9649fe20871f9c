import { RuntimeError } from '../sys/errors.js';
import { readInputFile } from '../sys/input-file.js';

/** runc update's single-value flags, as commander hands them over. */
export interface UpdateFlags {
  resources?: string;
  blkioWeight?: string;
  cpuPeriod?: string;
  cpuQuota?: string;
  cpuShare?: string;
  cpuRtPeriod?: string;
  cpuRtRuntime?: string;
  cpusetCpus?: string;
  cpusetMems?: string;
  memory?: string;
  memoryReservation?: string;
  memorySwap?: string;
  kernelMemory?: string;
  kernelMemoryTcp?: string;
  pidsLimit?: string;
}

type Resources = Record<string, Record<string, number | string>>;

/**
 * The linux.resources `kapsel update` sends: --resources FILE|- (JSON),
 * then the single-value flags on top of it.
 */
export async function resourcesOf(f: UpdateFlags): Promise<Resources> {
  let r: Resources = {};
  if (f.resources !== undefined) {
    const text = await readInputFile(f.resources);
    try {
      r = JSON.parse(text) as Resources;
    } catch (err) {
      throw new RuntimeError(`resources: ${(err as Error).message}`);
    }
  }
  const set = (group: string, key: string, value: number | string | undefined): void => {
    if (value === undefined) return;
    r[group] = { ...(r[group] ?? {}), [key]: value };
  };
  set('blockIO', 'weight', num(f.blkioWeight, 'blkio-weight'));
  set('cpu', 'period', num(f.cpuPeriod, 'cpu-period'));
  set('cpu', 'quota', num(f.cpuQuota, 'cpu-quota'));
  set('cpu', 'shares', num(f.cpuShare, 'cpu-share'));
  set('cpu', 'realtimePeriod', num(f.cpuRtPeriod, 'cpu-rt-period'));
  set('cpu', 'realtimeRuntime', num(f.cpuRtRuntime, 'cpu-rt-runtime'));
  set('cpu', 'cpus', f.cpusetCpus);
  set('cpu', 'mems', f.cpusetMems);
  set('memory', 'limit', bytes(f.memory, 'memory'));
  set('memory', 'reservation', bytes(f.memoryReservation, 'memory-reservation'));
  set('memory', 'swap', bytes(f.memorySwap, 'memory-swap'));
  set('memory', 'kernel', bytes(f.kernelMemory, 'kernel-memory'));
  set('memory', 'kernelTCP', bytes(f.kernelMemoryTcp, 'kernel-memory-tcp'));
  set('pids', 'limit', num(f.pidsLimit, 'pids-limit'));
  return r;
}

function num(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v)) throw new RuntimeError(`invalid value for --${flag}: ${v}`);
  return Number(v);
}

/** Sizes as runc takes them (docker/go-units RAMInBytes): 512, 64k, 256m, 1g; -1 is unlimited. */
function bytes(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (v === '-1') return -1;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?$/i.exec(v);
  if (m === null) throw new RuntimeError(`invalid value for --${flag}: ${v}`);
  const power = 'bkmgtp'.indexOf((m[2] ?? '').toLowerCase() || 'b');
  return Math.round(Number(m[1]) * 1024 ** power);
}
