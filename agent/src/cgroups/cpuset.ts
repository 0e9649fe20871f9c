import type { LinuxResources } from '../../../oci/resources.js';
import { invalidArgument } from '../errors.js';
import { writeCgroupFile } from './fs.js';
import type { Controller } from './types.js';
import type { Obj } from './fields.js';

/**
 * Parses a kernel cpu/node list ("0-3,5"); throws naming field on bad syntax.
 * An empty string is an empty list.
 */
export function parseCpuList(list: string, field: string): number[] {
  const out = new Set<number>();
  if (list.trim() === '') return [];
  for (const part of list.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (m === null) throw invalidArgument(`${field}: ${JSON.stringify(list)} is not a cpu list`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) throw invalidArgument(`${field}: range ${part} goes backwards`);
    // Bounded by the validator before any range gets this far in practice;
    // still, never expand an absurd range into memory.
    if (to - from > 65536) throw invalidArgument(`${field}: range ${part} is too large`);
    for (let i = from; i <= to; i++) out.add(i);
  }
  return [...out].sort((a, b) => a - b);
}

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

/** cpu.cpus or cpu.mems: a kernel list naming only CPUs or nodes the guest has. */
export function checkCpuList(
  o: Obj,
  key: 'cpus' | 'mems',
  field: string,
  available: readonly number[],
): string | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw invalidArgument(`${field}.${key}: must be a string`);
  const wanted = parseCpuList(v, `${field}.${key}`);
  const missing = wanted.filter((c) => !available.includes(c));
  if (missing.length > 0) {
    const what = key === 'cpus' ? 'CPUs' : 'memory nodes';
    throw invalidArgument(
      `${field}.${key}: ${JSON.stringify(v)} names ${what} the guest does not have (it has ${formatList(available)})`,
    );
  }
  return v;
}

function formatList(list: readonly number[]): string {
  return list.length === 0 ? 'none' : list.join(',');
}
