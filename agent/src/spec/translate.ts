import { existsSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import type { Mount, Spec } from '../../../oci/spec.js';
import {
  given,
  parseJsonObject as parseOciJson,
  validateSpec,
} from '../../../oci/validate/index.js';
import { invalidArgument, specErrors } from '../errors.js';
import { mountOptionsToFlags } from '../native/mount-options.js';
import type { MountSpec, NamespaceKind, SpawnRequest } from '../native/types.js';
import {
  idMapsOf,
  namespacesOf,
  rootPropagationOf,
  toDevices,
  toPaths,
  toSysctls,
} from './linux.js';
import { toProcessParts, type IdMaps } from './process.js';
import { toSeccompProgram } from './seccomp.js';

/** Parses JSON the host sent; every refusal names the field. */
export function parseJsonObject(json: string, field: string): object {
  return specErrors(() => parseOciJson(json, field));
}

/**
 * Parses and validates the spec JSON the host sent, with the validator the
 * host ran before booting this VM (oci/validate), so the words are the same.
 * @throws AgentError invalid-argument naming the field
 */
export function parseSpec(json: string): Spec {
  return specErrors(() => validateSpec(parseOciJson(json, 'oci_spec_json')));
}

/** A create request, and which namespaces its spec wants joined from elsewhere. */
export interface CreatePlan {
  request: SpawnRequest;
  /** linux.namespaces entries with a path (pods): the sandbox's container's. */
  join: NamespaceKind[];
}

/**
 * Turns an OCI spec into what the native helper needs to build the container
 * init, refusing what it cannot honour rather than ignoring it.
 */
export function toSpawnRequest(spec: Spec): CreatePlan {
  // Validated again: callers may hand over a Spec object that did not come through parseSpec.
  specErrors(() => validateSpec(spec));
  const root = spec.root?.path;
  if (typeof root !== 'string' || !isAbsolute(root)) {
    throw invalidArgument(
      `root.path: must be an absolute path as the agent sees it, got ${JSON.stringify(root)}`,
    );
  }
  const linux = spec.linux;
  const ns = namespacesOf(linux);
  const userns = ns.create.includes('user');
  // The mappings first: a missing one is the better message than "uid not mapped".
  const idMaps = userns ? idMapsOf(linux) : undefined;
  const maps: IdMaps | undefined = userns
    ? { uid: linux?.uidMappings ?? [], gid: linux?.gidMappings ?? [] }
    : undefined;
  const request: SpawnRequest = {
    ...toProcessParts(spec.process, 'process', maps),
    namespaces: ns.create,
    rootfs: root,
    readonlyRootfs: spec.root?.readonly === true,
    mounts: (spec.mounts ?? []).map((m, i) => toMountSpec(m, i)),
  };
  if (spec.hostname !== undefined && spec.hostname !== '') {
    // runc refuses a hostname without a UTS namespace: it would rename the
    // guest. One joined from the pod already has the pod's name.
    // oci/validate has refused one without any uts entry.
    if (ns.create.includes('uts')) request.hostname = spec.hostname;
  }
  if (idMaps !== undefined) Object.assign(request, idMaps);
  const propagation = rootPropagationOf(linux);
  if (propagation !== undefined) request.rootPropagation = propagation;
  if (given(linux?.sysctl)) request.sysctl = toSysctls(linux.sysctl);
  if (given(linux?.devices)) request.devices = toDevices(linux.devices);
  const masked = toPaths(linux?.maskedPaths);
  if (masked.length > 0) request.maskedPaths = masked;
  const readonly = toPaths(linux?.readonlyPaths);
  if (readonly.length > 0) request.readonlyPaths = readonly;
  if (linux?.seccomp !== undefined && given(linux.seccomp))
    request.seccomp = toSeccompProgram(linux.seccomp);
  return { request, join: ns.join };
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
  if (isBind && (typeof m.source !== 'string' || !existsSync(m.source))) {
    throw invalidArgument(`${field}.source: ${JSON.stringify(m.source)} does not exist`);
  }
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
