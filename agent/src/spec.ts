import { isAbsolute } from 'node:path';
import type { Mount, NamespaceType, Spec } from '../../oci/spec.js';
import { invalidArgument } from './errors.js';
import { mountOptionsToFlags } from './native/mount-options.js';
import type { MountSpec, SpawnRequest } from './native/types.js';

type NewNamespace = SpawnRequest['namespaces'][number];

const NAMESPACES: Record<NamespaceType, NewNamespace | undefined> = {
  mount: 'mount',
  uts: 'uts',
  ipc: 'ipc',
  pid: 'pid',
  network: 'network',
  cgroup: 'cgroup',
  user: undefined,
  time: undefined,
};

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Parses the spec JSON the host sent; every refusal names the field. */
export function parseSpec(json: string): Spec {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw invalidArgument(`oci_spec_json: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidArgument('oci_spec_json: not a JSON object');
  }
  return value as Spec;
}

/**
 * Turns an OCI spec into what the native helper needs to build the container
 * init, refusing what it cannot honour rather than ignoring it.
 */
export function toSpawnRequest(spec: Spec): SpawnRequest {
  const proc = spec.process;
  if (proc === undefined) throw invalidArgument('process: missing');
  if (proc.terminal === true) {
    throw invalidArgument('process.terminal: a terminal is not supported yet');
  }
  const args = proc.args;
  if (!Array.isArray(args) || args.length === 0 || args.some((a) => typeof a !== 'string')) {
    throw invalidArgument('process.args: must be a non-empty list of strings');
  }
  if (typeof proc.cwd !== 'string' || !isAbsolute(proc.cwd)) {
    throw invalidArgument(`process.cwd: must be an absolute path, got ${JSON.stringify(proc.cwd)}`);
  }
  const root = spec.root?.path;
  if (typeof root !== 'string' || !isAbsolute(root)) {
    throw invalidArgument(
      `root.path: must be an absolute path as the agent sees it, got ${JSON.stringify(root)}`,
    );
  }
  const env = proc.env ?? [DEFAULT_PATH];
  if (!Array.isArray(env) || env.some((e) => typeof e !== 'string' || !e.includes('='))) {
    throw invalidArgument('process.env: entries must be NAME=value strings');
  }
  const uid = checkId(proc.user.uid, 'process.user.uid');
  const gid = checkId(proc.user.gid, 'process.user.gid');

  const request: SpawnRequest = {
    namespaces: namespacesOf(spec),
    rootfs: root,
    readonlyRootfs: spec.root?.readonly === true,
    mounts: (spec.mounts ?? []).map((m, i) => toMountSpec(m, i)),
    args,
    env,
    cwd: proc.cwd,
    uid,
    gid,
  };
  if (spec.hostname !== undefined && spec.hostname !== '') request.hostname = spec.hostname;
  return request;
}

function checkId(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xfffffffe) {
    throw invalidArgument(
      `${field}: must be an integer in 0..4294967294, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function namespacesOf(spec: Spec): NewNamespace[] {
  const out: NewNamespace[] = [];
  (spec.linux?.namespaces ?? []).forEach((ns, i) => {
    const field = `linux.namespaces[${i}]`;
    if (!Object.hasOwn(NAMESPACES, ns.type)) {
      throw invalidArgument(`${field}.type: unknown namespace type ${JSON.stringify(ns.type)}`);
    }
    const mapped = NAMESPACES[ns.type];
    if (mapped === undefined) {
      throw invalidArgument(`${field}.type: ${ns.type} namespaces are not supported yet`);
    }
    if (ns.path !== undefined && ns.path !== '') {
      throw invalidArgument(`${field}.path: joining an existing namespace is not supported yet`);
    }
    if (out.includes(mapped)) throw invalidArgument(`${field}.type: ${ns.type} given twice`);
    out.push(mapped);
  });
  if (!out.includes('mount')) {
    // runc requires it too: without a mount namespace pivot_root would change
    // the agent's own root.
    throw invalidArgument('linux.namespaces: a mount namespace is required');
  }
  return out;
}

function toMountSpec(m: Mount, i: number): MountSpec {
  const field = `mounts[${i}]`;
  if (typeof m.destination !== 'string' || !isAbsolute(m.destination)) {
    throw invalidArgument(
      `${field}.destination: must be an absolute path, got ${JSON.stringify(m.destination)}`,
    );
  }
  const options = m.options ?? [];
  let fstype = m.type ?? '';
  const isBind = options.includes('bind') || options.includes('rbind');
  if (fstype === '' && !isBind)
    throw invalidArgument(`${field}.type: missing for a non-bind mount`);
  // The guest is cgroup v2 only; runc mounts cgroup2 for a "cgroup" mount on
  // a unified host too.
  if (fstype === 'cgroup') fstype = 'cgroup2';
  const { flags, data, propagation } = mountOptionsToFlags(options);
  const spec: MountSpec = {
    source: m.source ?? fstype,
    target: m.destination,
    fstype: isBind ? '' : fstype,
    flags,
    data,
  };
  if (propagation !== 0) spec.propagation = propagation;
  return spec;
}
