// linux.resources, from a spec or an update: this dispatcher checks the top
// level and each file its part. Every refusal names the field.
import type { LinuxResources } from '../../resources.js';
import { SpecError } from '../error.js';
import { knownKeys, object } from '../fields.js';
import { validateCpu, type CpuLimits } from './cpu.js';
import { validateDeviceRules } from './devices.js';
import { validateHugepages } from './hugetlb.js';
import { validateBlockIO } from './io.js';
import { validateMemory } from './memory.js';
import { validatePids } from './pids.js';
import { validateUnified } from './unified.js';
import { checkV1Only, type IgnoreSink } from './v1-only.js';

export interface ResourcesOptions {
  /** The guest's CPUs and memory nodes (the agent knows them; the host does not). */
  limits?: CpuLimits;
  /** Told of every cgroup v1-only setting that was dropped (see v1-only.ts). */
  ignore?: IgnoreSink;
  /** The path the refusals name; linux.resources by default. */
  field?: string;
}

/**
 * Checks linux.resources and returns what cgroup v2 applies of it: unset
 * values (0, "", null, as runc treats them) and v1-only settings left out.
 * Absent means nothing to set.
 * @throws SpecError naming the field
 */
export function validateResources(value: unknown, opts: ResourcesOptions = {}): LinuxResources {
  const F = opts.field ?? 'linux.resources';
  if (value === undefined || value === null) return {};
  const o = object(value, F);
  knownKeys(
    o,
    ['devices', 'memory', 'cpu', 'pids', 'blockIO', 'hugepageLimits', 'unified', 'network', 'rdma'],
    F,
  );
  const has = (k: string): boolean => o[k] !== undefined && o[k] !== null;
  const out: LinuxResources = {};
  if (has('devices')) out.devices = validateDeviceRules(o['devices'], `${F}.devices`);
  if (has('memory')) {
    const memory = validateMemory(o['memory'], `${F}.memory`, opts.ignore);
    if (Object.keys(memory).length > 0) out.memory = memory;
  }
  if (has('cpu')) {
    const cpu = validateCpu(o['cpu'], `${F}.cpu`, opts.limits, opts.ignore);
    if (Object.keys(cpu).length > 0) out.cpu = cpu;
  }
  if (has('pids')) {
    const pids = validatePids(o['pids'], `${F}.pids`);
    if (pids !== undefined) out.pids = pids;
  }
  if (has('blockIO')) {
    const io = validateBlockIO(o['blockIO'], `${F}.blockIO`, opts.ignore);
    if (Object.keys(io).length > 0) out.blockIO = io;
  }
  if (has('hugepageLimits')) {
    out.hugepageLimits = validateHugepages(o['hugepageLimits'], `${F}.hugepageLimits`);
  }
  if (has('unified')) out.unified = validateUnified(o['unified'], `${F}.unified`);
  if (has('network')) {
    const net = object(o['network'], `${F}.network`);
    knownKeys(net, ['classID', 'priorities'], `${F}.network`);
    checkV1Only('network.classID', net['classID'], `${F}.network.classID`, opts.ignore);
    checkV1Only('network.priorities', net['priorities'], `${F}.network.priorities`, opts.ignore);
  }
  if (has('rdma') && Object.keys(object(o['rdma'], `${F}.rdma`)).length > 0) {
    throw new SpecError(`${F}.rdma`, 'rdma limits are not supported yet');
  }
  return out;
}
