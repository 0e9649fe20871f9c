import { SpecError } from './error.js';
import { array, object, typeName } from './fields.js';

/** capability.h, in bit order (CAP_CHOWN is bit 0). */
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

export const CAPABILITY_SETS = [
  'bounding',
  'effective',
  'permitted',
  'inheritable',
  'ambient',
] as const;

/**
 * process.capabilities: every set a list of names capability.h has (any
 * case). A name no kernel has is refused as a typo; runc 1.1 warns
 * "ignoring unknown or unavailable capabilities" and goes on
 * (libcontainer/capabilities), see docs/compatibility.md.
 */
export function validateCapabilities(v: unknown, field: string): void {
  const o = object(v, field);
  for (const set of CAPABILITY_SETS) {
    const names = o[set];
    if (names === undefined || names === null) continue;
    array(names, `${field}.${set}`).forEach((name: unknown, i) => {
      const f = `${field}.${set}[${i}]`;
      if (typeof name !== 'string')
        throw new SpecError(f, `must be a string, got ${typeName(name)}`);
      if (!CAPABILITY_NAMES.includes(name.toUpperCase())) {
        throw new SpecError(f, `unknown capability ${JSON.stringify(name)}`);
      }
    });
  }
}
