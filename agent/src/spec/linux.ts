// The linux section of the spec, apart from seccomp: namespaces, id
// mappings, devices, sysctls, masked and read-only paths, root propagation.
import type { Device, IdMapping, Linux, NamespaceType } from '../../../oci/spec.js';
import { invalidArgument } from '../errors.js';
import { propagationFlags } from '../native/mount-options.js';
import type {
  DeviceSpec,
  JoinNamespace,
  NamespaceKind,
  SpawnRequest,
  SysctlSpec,
} from '../native/types.js';

const NAMESPACES: Record<NamespaceType, NamespaceKind | undefined> = {
  mount: 'mount',
  uts: 'uts',
  ipc: 'ipc',
  pid: 'pid',
  network: 'network',
  cgroup: 'cgroup',
  user: 'user',
  time: undefined,
};

export interface Namespaces {
  /** New namespaces for the init. */
  create: NamespaceKind[];
  /** Entries with a path: joined from the sandbox's container (pods). */
  join: NamespaceKind[];
}

export function namespacesOf(linux: Linux | undefined): Namespaces {
  const out: Namespaces = { create: [], join: [] };
  for (const ns of linux?.namespaces ?? []) {
    const mapped = NAMESPACES[ns.type];
    if (mapped === undefined) continue; // refused by oci/validate
    if (ns.path !== undefined && ns.path !== '') out.join.push(mapped);
    else out.create.push(mapped);
  }
  if (!out.create.includes('mount')) {
    // A joined one is the sandbox container's: pivot_root there would move
    // another container's root (oci/validate has checked one is listed).
    throw invalidArgument('linux.namespaces: a new mount namespace is required');
  }
  return out;
}

/** The content of a uid_map/gid_map file. */
function mapOf(maps: readonly IdMapping[] | undefined, field: string): string {
  if (maps === undefined || maps.length === 0) {
    throw invalidArgument(`${field}: a user namespace needs mappings`);
  }
  return maps.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join('');
}

export function isMapped(id: number, maps: readonly IdMapping[] | undefined): boolean {
  return (maps ?? []).some((m) => id >= m.containerID && id < m.containerID + m.size);
}

export function idMapsOf(linux: Linux | undefined): Pick<SpawnRequest, 'uidMap' | 'gidMap'> {
  return {
    uidMap: mapOf(linux?.uidMappings, 'linux.uidMappings'),
    gidMap: mapOf(linux?.gidMappings, 'linux.gidMappings'),
  };
}

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const DEVICE_TYPES: Readonly<Record<string, number>> = {
  c: S_IFCHR,
  u: S_IFCHR,
  b: S_IFBLK,
  p: S_IFIFO,
};

export function toDevices(devices: readonly Device[]): DeviceSpec[] {
  // Types, paths and numbers checked by oci/validate.
  return devices.map((d) => {
    const type = DEVICE_TYPES[d.type] ?? S_IFCHR;
    const needsNumbers = type !== S_IFIFO;
    return {
      path: d.path,
      mode: type | ((d.fileMode ?? 0o666) & 0o7777),
      major: needsNumbers ? (d.major ?? 0) : 0,
      minor: needsNumbers ? (d.minor ?? 0) : 0,
      uid: d.uid ?? 0,
      gid: d.gid ?? 0,
    };
  });
}

/**
 * Sysctls as /proc/sys paths. oci/validate has applied runc's
 * validateSysctl (only keys in a namespace the container has of its own).
 */
export function toSysctls(sysctl: Readonly<Record<string, string>>): SysctlSpec[] {
  return Object.entries(sysctl).map(([key, value]) => ({ key: key.replaceAll('.', '/'), value }));
}

export function toPaths(paths: readonly string[] | undefined | null): string[] {
  return [...(paths ?? [])];
}

export function rootPropagationOf(linux: Linux | undefined): number | undefined {
  const name = linux?.rootfsPropagation;
  if (name === undefined || name === '') return undefined;
  const flags = propagationFlags(name);
  if (flags === undefined) {
    throw invalidArgument(`linux.rootfsPropagation: unknown propagation ${JSON.stringify(name)}`);
  }
  return flags;
}

/** Names under /proc/<pid>/ns/. */
const NS_FILES: Readonly<Record<NamespaceKind, string>> = {
  user: 'user',
  cgroup: 'cgroup',
  ipc: 'ipc',
  uts: 'uts',
  network: 'net',
  pid: 'pid',
  mount: 'mnt',
};

/**
 * setns order: the user namespace first (it owns the others, so entering it
 * grants the rights to join them), the mount namespace last (it changes the
 * root the remaining /proc paths would be looked up in). runc's nsexec does
 * the same.
 */
const JOIN_ORDER: readonly NamespaceKind[] = [
  'user',
  'cgroup',
  'ipc',
  'uts',
  'network',
  'pid',
  'mount',
];

/** The /proc/<pid>/ns paths to join for `kinds`, in setns order. */
export function joinsOf(pid: number, kinds: readonly NamespaceKind[]): JoinNamespace[] {
  return JOIN_ORDER.filter((k) => kinds.includes(k)).map((kind) => ({
    kind,
    path: `/proc/${pid}/ns/${NS_FILES[kind]}`,
  }));
}
