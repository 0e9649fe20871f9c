// process.capabilities: names to bit masks. Names are checked against the
// kernel's list (capability.h); one this kernel is too old for is dropped,
// as runc does, but a name no kernel has is a typo and refused.
import { readFileSync } from 'node:fs';
import type { Capabilities } from '../../../oci/spec.js';
import { invalidArgument } from '../errors.js';
import type { CapabilitySets } from '../native/types.js';

/** capability.h, in bit order. */
export const CAPABILITY_NAMES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

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

const SETS = ['bounding', 'effective', 'permitted', 'inheritable', 'ambient'] as const;

function maskOf(names: unknown, field: string): bigint {
  if (names === undefined) return 0n;
  if (!Array.isArray(names)) throw invalidArgument(`${field}: must be a list of names`);
  let mask = 0n;
  names.forEach((name: unknown, i) => {
    const bit = typeof name === 'string' ? CAPABILITY_NAMES.indexOf(name.toUpperCase()) : -1;
    if (bit < 0) {
      throw invalidArgument(`${field}[${i}]: unknown capability ${JSON.stringify(name)}`);
    }
    if (bit <= kernelLastCap()) mask |= 1n << BigInt(bit);
  });
  return mask;
}

/**
 * A set left out is empty; no capabilities object at all leaves the process
 * with what it has, as runc's capabilities.New(nil) does.
 */
export function toCapabilitySets(
  caps: Capabilities | undefined,
  field: string,
): CapabilitySets | undefined {
  if (caps === undefined) return undefined;
  const raw: unknown = caps;
  if (typeof raw !== 'object' || raw === null) throw invalidArgument(`${field}: must be an object`);
  const out = {} as Record<(typeof SETS)[number], bigint>;
  for (const set of SETS) out[set] = maskOf(caps[set], `${field}.${set}`);
  return out;
}
