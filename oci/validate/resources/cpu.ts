import type { CpuResources } from '../../resources.js';
import { SpecError } from '../error.js';
import { int, knownKeys, object, optInt } from '../fields.js';
import { checkCpuList } from './cpulist.js';
import { checkV1Only, type IgnoreSink } from './v1-only.js';

/** The guest's CPUs and memory nodes; known only in the guest. */
export interface CpuLimits {
  cpus: readonly number[];
  mems: readonly number[];
}

/**
 * linux.resources.cpu. 0 is "unset" for shares, quota and period, "" for
 * cpus and mems (runc's fs2 isCpuSet and setCpuset; Docker and containerd
 * send every field, unset ones as zero), so those are left out.
 */
export function validateCpu(
  v: unknown,
  field: string,
  limits: CpuLimits | undefined,
  ignore?: IgnoreSink,
): CpuResources {
  const o = object(v, field);
  knownKeys(
    o,
    [
      'shares',
      'quota',
      'burst',
      'period',
      'realtimeRuntime',
      'realtimePeriod',
      'cpus',
      'mems',
      'idle',
    ],
    field,
  );
  const has = (k: string): boolean => o[k] !== undefined && o[k] !== null;
  const out: CpuResources = {};
  // The kernel's cgroup v1 range.
  const shares = has('shares') ? optInt(o, 'shares', field, 0, 262144) : undefined;
  if (shares !== undefined && shares !== 0) out.shares = shares;
  const quota = has('quota') ? optInt(o, 'quota', field, -1) : undefined;
  if (quota !== undefined && quota !== 0) {
    // The kernel refuses quotas under 1 ms (EINVAL on cpu.max); say why here.
    if (quota > 0 && quota < 1000)
      throw new SpecError(`${field}.quota`, `must be >= 1000 (µs), got ${quota}`);
    out.quota = quota;
  }
  if (has('period')) {
    const period = int(o['period'], `${field}.period`, 0);
    // 1 ms .. 1 s: the kernel's bounds for a CFS bandwidth period.
    if (period !== 0 && (period < 1000 || period > 1_000_000)) {
      throw new SpecError(
        `${field}.period`,
        `must be between 1000 and 1000000 (µs), got ${period}`,
      );
    }
    if (period !== 0) out.period = period;
  }
  const burst = has('burst') ? optInt(o, 'burst', field, 0) : undefined;
  if (burst !== undefined) out.burst = burst;
  for (const k of ['realtimeRuntime', 'realtimePeriod'] as const) {
    if (has(k)) optInt(o, k, field, -1);
    checkV1Only(`cpu.${k}`, o[k], `${field}.${k}`, ignore);
  }
  const idle = has('idle') ? optInt(o, 'idle', field, 0, 1) : undefined;
  if (idle !== undefined) out.idle = idle;
  const cpus = checkCpuList(o, 'cpus', field, limits?.cpus);
  if (cpus !== undefined) out.cpus = cpus;
  const mems = checkCpuList(o, 'mems', field, limits?.mems);
  if (mems !== undefined) out.mems = mems;
  return out;
}
