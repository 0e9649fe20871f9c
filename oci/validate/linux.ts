import type { Linux } from '../spec.js';
import { SpecError } from './error.js';
import { absPath, array, int, object, optStr, strings, type Obj } from './fields.js';
import { validateResources, type ResourcesOptions } from './resources/index.js';
import { validateSeccomp } from './seccomp.js';

export const NAMESPACE_TYPES = [
  'pid',
  'network',
  'mount',
  'ipc',
  'uts',
  'user',
  'cgroup',
  'time',
] as const;

/** mount(2) propagation names, as linux.rootfsPropagation takes them. */
export const PROPAGATIONS = [
  'shared',
  'slave',
  'private',
  'unbindable',
  'rshared',
  'rslave',
  'rprivate',
  'runbindable',
] as const;

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

/** The namespace a namespaced sysctl lives in (runc's validateSysctl), if any. */
export function sysctlNamespace(key: string): 'ipc' | 'network' | 'uts' | undefined {
  if (IPC_SYSCTLS.has(key) || key.startsWith('fs.mqueue.')) return 'ipc';
  if (key.startsWith('net.')) return 'network';
  if (key === 'kernel.hostname' || key === 'kernel.domainname') return 'uts';
  return undefined;
}

/** linux.namespaces: the types the spec has (created or joined), each once. */
function validateNamespaces(v: unknown, field: string): Set<string> {
  const types = new Set<string>();
  if (v === undefined || v === null) return types;
  array(v, field).forEach((n, i) => {
    const f = `${field}[${i}]`;
    const o = object(n, f);
    const type = o['type'];
    if (typeof type !== 'string' || !(NAMESPACE_TYPES as readonly string[]).includes(type)) {
      throw new SpecError(`${f}.type`, `unknown namespace type ${JSON.stringify(type)}`);
    }
    if (type === 'time') throw new SpecError(`${f}.type`, 'time namespaces are not supported');
    if (types.has(type)) throw new SpecError(`${f}.type`, `${type} given twice`);
    types.add(type);
    const path = optStr(o, 'path', f);
    if (path !== undefined && path !== '') absPath(path, `${f}.path`);
  });
  if (!types.has('mount')) {
    // runc requires it too: without a mount namespace pivot_root would change
    // the runtime's own root.
    throw new SpecError(field, 'a new mount namespace is required');
  }
  return types;
}

function validateMappings(v: unknown, field: string, needed: boolean): void {
  if (v === undefined || v === null || (Array.isArray(v) && v.length === 0)) {
    if (needed) throw new SpecError(field, 'a user namespace needs mappings');
    return;
  }
  array(v, field).forEach((m, i) => {
    const o = object(m, `${field}[${i}]`);
    for (const k of ['containerID', 'hostID', 'size'])
      int(o[k], `${field}[${i}].${k}`, 0, 0xffffffff);
  });
}

function validateDevices(v: unknown, field: string): void {
  array(v, field).forEach((d, i) => {
    const f = `${field}[${i}]`;
    const o = object(d, f);
    const type = o['type'];
    if (type !== 'c' && type !== 'u' && type !== 'b' && type !== 'p') {
      throw new SpecError(`${f}.type`, `unknown device type ${JSON.stringify(type)}`);
    }
    absPath(o['path'], `${f}.path`);
    if (type !== 'p') {
      int(o['major'], `${f}.major`, 0, 0xffffffff);
      int(o['minor'], `${f}.minor`, 0, 0xffffffff);
    }
    for (const k of ['fileMode', 'uid', 'gid']) {
      if (o[k] !== undefined && o[k] !== null) int(o[k], `${f}.${k}`, 0, 0xffffffff);
    }
  });
}

function validateSysctl(v: unknown, field: string, namespaces: Set<string>): void {
  for (const [key, value] of Object.entries(object(v, field))) {
    const f = `${field}[${JSON.stringify(key)}]`;
    if (typeof value !== 'string') throw new SpecError(f, 'value must be a string');
    if (!/^[\w/.-]+$/.test(key) || key.includes('..')) throw new SpecError(f, 'not a sysctl name');
    const ns = sysctlNamespace(key);
    if (ns === undefined) throw new SpecError(f, 'not in a namespace the container has of its own');
    if (!namespaces.has(ns))
      throw new SpecError(f, `needs a ${ns} namespace of the container's own`);
  }
}

/**
 * The linux section (runtime-spec config-linux.md). The set of namespace
 * types it has is returned for the checks that depend on them.
 * @throws SpecError naming the field
 */
export function validateLinux(
  value: unknown,
  resources: ResourcesOptions,
): { linux: Linux | undefined; namespaces: Set<string> } {
  const field = 'linux';
  if (value === undefined || value === null) {
    // No linux section: no mount namespace either, which runc refuses too.
    validateNamespaces([], `${field}.namespaces`);
    return { linux: undefined, namespaces: new Set() };
  }
  const o: Obj = object(value, field);
  const namespaces = validateNamespaces(o['namespaces'], `${field}.namespaces`);
  const userns = namespaces.has('user');
  validateMappings(o['uidMappings'], `${field}.uidMappings`, userns);
  validateMappings(o['gidMappings'], `${field}.gidMappings`, userns);
  if (o['devices'] !== undefined && o['devices'] !== null)
    validateDevices(o['devices'], `${field}.devices`);
  optStr(o, 'cgroupsPath', field);
  validateResources(o['resources'], { ...resources, field: `${field}.resources` });
  const propagation = optStr(o, 'rootfsPropagation', field);
  if (
    propagation !== undefined &&
    propagation !== '' &&
    !(PROPAGATIONS as readonly string[]).includes(propagation)
  ) {
    throw new SpecError(
      `${field}.rootfsPropagation`,
      `unknown propagation ${JSON.stringify(propagation)}`,
    );
  }
  if (o['seccomp'] !== undefined && o['seccomp'] !== null)
    validateSeccomp(o['seccomp'], `${field}.seccomp`);
  if (o['sysctl'] !== undefined && o['sysctl'] !== null)
    validateSysctl(o['sysctl'], `${field}.sysctl`, namespaces);
  for (const k of ['maskedPaths', 'readonlyPaths']) {
    if (o[k] === undefined || o[k] === null) continue;
    strings(o[k], `${field}.${k}`).forEach((p, i) => absPath(p, `${field}.${k}[${i}]`));
  }
  optStr(o, 'mountLabel', field);
  return { linux: value, namespaces };
}
