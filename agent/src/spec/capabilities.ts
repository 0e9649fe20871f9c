// process.capabilities: names to bit masks. oci/validate has refused names
// no kernel has (typos); one this guest kernel is too old for is dropped
// here, as runc does.
import { readFileSync } from 'node:fs';
import type { Capabilities } from '../../../oci/spec.js';
import { CAPABILITY_NAMES, CAPABILITY_SETS } from '../../../oci/validate/index.js';
import type { CapabilitySets } from '../native/types.js';

let lastCap: number | undefined;

/** /proc/sys/kernel/cap_last_cap of the kernel the containers run on. */
function kernelLastCap(): number {
  if (lastCap === undefined) {
    try {
      lastCap = Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim());
    } catch {
      lastCap = CAPABILITY_NAMES.length - 1;
    }
  }
  return lastCap;
}

function maskOf(names: readonly string[] | undefined | null): bigint {
  let mask = 0n;
  for (const name of names ?? []) {
    const bit = CAPABILITY_NAMES.indexOf(name.toUpperCase());
    if (bit >= 0 && bit <= kernelLastCap()) mask |= 1n << BigInt(bit);
  }
  return mask;
}

/**
 * Takes a validated set (oci/validate). A set left out is empty; no capabilities object at all leaves the process
 * with what it has, as runc's capabilities.New(nil) does.
 */
export function toCapabilitySets(
  caps: Capabilities | undefined | null,
): CapabilitySets | undefined {
  if (caps === undefined || caps === null) return undefined;
  const out = {} as Record<(typeof CAPABILITY_SETS)[number], bigint>;
  for (const set of CAPABILITY_SETS) out[set] = maskOf(caps[set]);
  // The kernel raises an ambient capability only if it is permitted and
  // inheritable (PR_CAP_AMBIENT_RAISE: EPERM otherwise); runc warns "can't
  // raise ambient capability" and goes on (libcontainer/capabilities
  // ApplyCaps), so those are left out here. The host logs the warning.
  out.ambient &= out.permitted & out.inheritable;
  return out;
}
