// Checks linux.resources (from the spec or an UpdateContainer) before any
// cgroup is touched: this dispatcher checks the top level, and each
// controller's file checks its own part; every refusal names the field, so
// bad input fails fast and leaves nothing behind.
import type { LinuxResources } from '../../../oci/resources.js';
import { invalidArgument } from '../errors.js';
import { validateCpu } from './cpu.js';
import { validateDeviceRules } from './devices.js';
import { F, knownKeys, object } from './fields.js';
import { validateHugepages } from './hugetlb.js';
import { validateBlockIO } from './io.js';
import { validateMemory } from './memory.js';
import { validatePids } from './pids.js';
import type { HostLimits } from './types.js';
import { validateUnified } from './unified.js';

/** Validates linux.resources; absent means nothing to set. */
export function validateResources(value: unknown, limits: HostLimits): LinuxResources {
  if (value === undefined || value === null) return {};
  const o = object(value, F);
  knownKeys(
    o,
    ['devices', 'memory', 'cpu', 'pids', 'blockIO', 'hugepageLimits', 'unified', 'network', 'rdma'],
    F,
  );
  const out: LinuxResources = {};
  if (o['devices'] !== undefined) out.devices = validateDeviceRules(o['devices']);
  if (o['memory'] !== undefined) out.memory = validateMemory(o['memory']);
  if (o['cpu'] !== undefined) out.cpu = validateCpu(o['cpu'], limits);
  if (o['pids'] !== undefined) out.pids = validatePids(o['pids']);
  if (o['blockIO'] !== undefined) out.blockIO = validateBlockIO(o['blockIO']);
  if (o['hugepageLimits'] !== undefined)
    out.hugepageLimits = validateHugepages(o['hugepageLimits']);
  if (o['unified'] !== undefined) out.unified = validateUnified(o['unified']);
  const network = o['network'];
  if (network !== undefined && Object.keys(object(network, `${F}.network`)).length > 0) {
    throw invalidArgument(`${F}.network: net_cls/net_prio do not exist on cgroup v2`);
  }
  const rdma = o['rdma'];
  if (rdma !== undefined && Object.keys(object(rdma, `${F}.rdma`)).length > 0) {
    throw invalidArgument(`${F}.rdma: rdma limits are not supported yet`);
  }
  return out;
}
