// The linux section of the spec, apart from seccomp: namespaces, id
// mappings, devices, sysctls, masked and read-only paths, root propagation.
import { isAbsolute } from 'node:path';
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
  (linux?.namespaces ?? []).forEach((ns, i) => {
    const field = `linux.namespaces[${i}]`;
    if (!Object.hasOwn(NAMESPACES, ns.type)) {
      throw invalidArgument(`${field}.type: unknown namespace type ${JSON.stringify(ns.type)}`);
    }
    const mapped = NAMESPACES[ns.type];
    if (mapped === undefined) {
      throw invalidArgument(`${field}.type: ${ns.type} namespaces are not supported`);
    }
    if (out.create.includes(mapped) || out.join.includes(mapped)) {
      throw invalidArgument(`${field}.type: ${ns.type} given twice`);
    }
    if (ns.path !== undefined && ns.path !== '') out.join.push(mapped);
    else out.create.push(mapped);
  });
  if (!out.create.includes('mount')) {
    // runc requires it too: without a mount namespace pivot_root would change
    // the agent's own root.
    throw invalidArgument('linux.namespaces: a new mount namespace is required');
  }
  return out;
}

/** The content of a uid_map/gid_map file. */
function mapOf(maps: readonly IdMapping[] | undefined, field: string): string {
  if (maps === undefined || maps.length === 0) {
    throw invalidArgument(`${field}: a user namespace needs mappings`);
  }
  return maps
    .map((m, i) => {
      for (const k of ['containerID', 'hostID', 'size'] as const) {
        const v = m[k];
        if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
          throw invalidArgument(`${field}[${i}].${k}: must be an integer in 0..4294967295`);
        }
      }
      return `${m.containerID} ${m.hostID} ${m.size}\n`;
    })
    .join('');
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

function devNum(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw invalidArgument(`${field}: must be an integer in 0..4294967295`);
  }
  return v;
}

export function toDevices(devices: readonly Device[]): DeviceSpec[] {
  return devices.map((d, i) => {
    const f = `linux.devices[${i}]`;
    const type = Object.hasOwn(DEVICE_TYPES, d.type) ? DEVICE_TYPES[d.type] : undefined;
    if (type === undefined)
      throw invalidArgument(`${f}.type: unknown device type ${JSON.stringify(d.type)}`);
    if (typeof d.path !== 'string' || !isAbsolute(d.path)) {
      throw invalidArgument(`${f}.path: must be an absolute path`);
    }
    const needsNumbers = type !== S_IFIFO;
    return {
      path: d.path,
      mode: type | ((d.fileMode ?? 0o666) & 0o7777),
      major: needsNumbers ? devNum(d.major, `${f}.major`) : 0,
      minor: needsNumbers ? devNum(d.minor, `${f}.minor`) : 0,
      uid: devNum(d.uid ?? 0, `${f}.uid`),
      gid: devNum(d.gid ?? 0, `${f}.gid`),
    };
  });
}

const IPC_SYSCTLS = new Set([
  'kernel.msgmax',
  'kernel.msgmnb',
  'kernel.msgmni',
  'kernel.sem',
  'kernel.shmall',
  'kernel.shmmax',
  'kernel.shmmni',
  'kernel.shm_rmid_forced',
]);

/**
 * runc's validateSysctl: only keys that live in a namespace the container
 * has of its own (created or joined), or it would change the whole guest.
 */
export function toSysctls(
  sysctl: Readonly<Record<string, string>>,
  has: (ns: NamespaceKind) => boolean,
): SysctlSpec[] {
  return Object.entries(sysctl).map(([key, value]) => {
    const f = `linux.sysctl[${JSON.stringify(key)}]`;
    if (typeof value !== 'string') throw invalidArgument(`${f}: value must be a string`);
    let ns: NamespaceKind | undefined;
    if (IPC_SYSCTLS.has(key) || key.startsWith('fs.mqueue.')) ns = 'ipc';
    else if (key.startsWith('net.')) ns = 'network';
    else if (key === 'kernel.hostname' || key === 'kernel.domainname') ns = 'uts';
    if (ns === undefined) {
      throw invalidArgument(`${f}: not in a namespace the container has of its own`);
    }
    if (!has(ns)) throw invalidArgument(`${f}: needs a ${ns} namespace of the container's own`);
    const path = key.replaceAll('.', '/');
    if (!/^[\w/-]+$/.test(path)) throw invalidArgument(`${f}: not a sysctl name`);
    return { key: path, value };
  });
}

export function toPaths(paths: readonly string[] | undefined, field: string): string[] {
  return (paths ?? []).map((p, i) => {
    if (typeof p !== 'string' || !isAbsolute(p)) {
      throw invalidArgument(`${field}[${i}]: must be an absolute path, got ${JSON.stringify(p)}`);
    }
    return p;
  });
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
