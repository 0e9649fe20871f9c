// How big a sandbox VM must be for its containers, as Kata sizes its VMs: a
// fixed base for the guest itself (kernel, PID 1, the Node agent) plus the
// sum of the containers' limits, so a container given 2 GiB is not squeezed
// into a 1 GiB guest.
import type { Spec } from '../../../oci/spec.js';

const MiB = 1024 * 1024;

export interface SizingOptions {
  /** Guest memory without any container limit (Kata: default_memory). */
  baseMemoryMiB: number;
  /** vCPUs without any container quota (Kata: default_vcpus). */
  baseCpus: number;
  /** Upper bound on vCPUs (e.g. the host's CPUs). */
  maxCpus: number;
}

export const DEFAULT_SIZING: SizingOptions = { baseMemoryMiB: 1024, baseCpus: 1, maxCpus: 16 };

/**
 * The sizing of the configuration's [hypervisor] (config/schema.ts):
 * default_memory, default_vcpus, and default_maxvcpus, where 0 means the
 * host's `hostCpus`, as in Kata.
 */
export function sizingOf(
  hv: { default_memory: number; default_vcpus: number; default_maxvcpus: number },
  hostCpus: number,
): SizingOptions {
  return {
    baseMemoryMiB: hv.default_memory,
    baseCpus: hv.default_vcpus,
    maxCpus: hv.default_maxvcpus > 0 ? hv.default_maxvcpus : hostCpus,
  };
}

export interface VmSize {
  memoryMiB: number;
  cpus: number;
}

/**
 * memoryMiB = base + Σ memory.limit (rounded up to MiB; -1 or unset adds
 * nothing, the container shares the base); cpus = base + ⌈Σ quota/period⌉,
 * capped at maxCpus. The agent checks the containers' cpusets against what
 * the guest then has.
 */
export function sandboxSize(specs: readonly Spec[], opts: SizingOptions = DEFAULT_SIZING): VmSize {
  let memoryBytes = 0;
  let cpuShare = 0;
  for (const spec of specs) {
    const r = spec.linux?.resources;
    const limit = r?.memory?.limit;
    if (typeof limit === 'number' && limit > 0) memoryBytes += limit;
    const quota = r?.cpu?.quota;
    const period = r?.cpu?.period ?? 100_000;
    if (typeof quota === 'number' && quota > 0 && period > 0) cpuShare += quota / period;
  }
  return {
    memoryMiB: opts.baseMemoryMiB + Math.ceil(memoryBytes / MiB),
    cpus: Math.max(1, Math.min(opts.maxCpus, opts.baseCpus + Math.ceil(cpuShare))),
  };
}
