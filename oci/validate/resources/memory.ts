import type { MemoryResources } from '../../resources.js';
import { SpecError } from '../error.js';
import { bool, knownKeys, object, optInt } from '../fields.js';
import { checkV1Only, type IgnoreSink } from './v1-only.js';

/**
 * OCI's swap is memory+swap (a cgroup v1 notion); memory.swap.max is swap
 * alone. runc's ConvertMemorySwapToCgroupV2Value: -1 is max, 0 unset, and
 * an unlimited memory with unset swap makes swap unlimited too. swap equal
 * to memory is "0": no swap (runc's fs2 setMemory).
 * @throws SpecError when swap is set without a memory limit or below it
 */
export function swapMaxValue(mem: MemoryResources): string | undefined {
  const memory = mem.limit ?? 0;
  const swap = mem.swap ?? 0;
  if (memory === -1 && swap === 0) return 'max';
  if (swap === -1) return 'max';
  if (swap === 0) return undefined;
  if (memory === 0 || memory === -1) {
    throw new SpecError(
      'linux.resources.memory.swap',
      'a swap limit needs a memory limit (memory.limit)',
    );
  }
  if (swap < memory) {
    throw new SpecError(
      'linux.resources.memory.swap',
      `memory+swap (${swap}) must be >= memory.limit (${memory})`,
    );
  }
  return String(swap - memory);
}

/**
 * linux.resources.memory. 0 is "unset" for limit, reservation and swap
 * (runc's numToStr and isMemorySet), so those are left out; -1 is unlimited.
 */
export function validateMemory(v: unknown, field: string, ignore?: IgnoreSink): MemoryResources {
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
  for (const k of ['limit', 'reservation', 'swap'] as const) {
    const n = o[k] === null ? undefined : optInt(o, k, field, -1);
    if (n !== undefined && n !== 0) out[k] = n;
  }
  for (const k of ['kernel', 'kernelTCP'] as const) {
    if (o[k] !== null) optInt(o, k, field, -1);
    checkV1Only(`memory.${k}`, o[k], `${field}.${k}`, ignore);
  }
  if (o['swappiness'] !== null) optInt(o, 'swappiness', field, 0, 100);
  checkV1Only('memory.swappiness', o['swappiness'], `${field}.swappiness`, ignore);
  for (const k of ['disableOOMKiller', 'useHierarchy', 'checkBeforeUpdate'] as const) {
    if (o[k] !== undefined && o[k] !== null) bool(o[k], `${field}.${k}`);
  }
  checkV1Only(
    'memory.disableOOMKiller',
    o['disableOOMKiller'],
    `${field}.disableOOMKiller`,
    ignore,
  );
  checkV1Only('memory.useHierarchy', o['useHierarchy'], `${field}.useHierarchy`, ignore);
  swapMaxValue(out);
  return out;
}
