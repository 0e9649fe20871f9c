import type { Linux, Process } from '../../../oci/spec.js';
import type { NamespaceKind, SeccompProgram, SpawnRequest } from '../native/types.js';
import { joinsOf } from './linux.js';
import { toProcessParts, type IdMaps } from './process.js';
import { parseJsonObject } from './translate.js';

/** What an exec into this container inherits from it. */
export interface ExecContext {
  /** Namespaces the init has (created or joined): an exec joins all of them. */
  namespaces: readonly NamespaceKind[];
  /** The container's cgroup v2 directory, when it has one: execs are born in it. */
  cgroupDir?: string;
  /** linux.seccomp applies to every process of the container, as in runc. */
  seccomp?: SeccompProgram;
  /** With a user namespace: exec users must be mapped. */
  idMaps?: IdMaps;
  /** Its uid_map/gid_map text: a terminal is chowned to the mapped ids. */
  mapText?: { uid: string; gid: string };
}

/**
 * What execs will inherit from a container whose init `request` made (the
 * namespaces it created and `joined`, its cgroup and seccomp program, its
 * user namespace's maps).
 */
export function execContextOf(
  request: SpawnRequest,
  joined: readonly NamespaceKind[],
  linux: Linux | undefined,
): ExecContext {
  const context: ExecContext = { namespaces: [...request.namespaces, ...joined] };
  if (request.seccomp !== undefined) context.seccomp = request.seccomp;
  if (request.namespaces.includes('user')) {
    context.idMaps = { uid: linux?.uidMappings ?? [], gid: linux?.gidMappings ?? [] };
    context.mapText = { uid: request.uidMap ?? '', gid: request.gidMap ?? '' };
  }
  if (request.cgroup !== undefined) context.cgroupDir = request.cgroup;
  return context;
}

/**
 * runc exec: the spawn request for `processJson` (an OCI process) in all the
 * namespaces of the container whose init is `initPid` (through
 * /proc/<init>/ns) and its cgroup, under its seccomp program.
 */
export function toExecRequest(
  processJson: string,
  initPid: number,
  ctx: ExecContext,
): SpawnRequest {
  const proc = parseJsonObject(processJson, 'process_json') as Process;
  const request: SpawnRequest = {
    ...toProcessParts(proc, 'process', ctx.idMaps),
    namespaces: [],
    joinNamespaces: joinsOf(initPid, ctx.namespaces),
    mounts: [],
  };
  if (ctx.cgroupDir !== undefined) request.cgroup = ctx.cgroupDir;
  if (ctx.seccomp !== undefined) request.seccomp = ctx.seccomp;
  if (ctx.mapText !== undefined) {
    // Not written again (no new user namespace): they translate the
    // terminal's owner to the ids outside.
    request.uidMap = ctx.mapText.uid;
    request.gidMap = ctx.mapText.gid;
  }
  return request;
}
