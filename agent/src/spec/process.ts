// An OCI process (config.json's "process", or ExecProcess's process_json)
// as the parts of a spawn request it decides: argv, env, user, terminal and
// the per-process lock-down (capabilities, noNewPrivileges, rlimits,
// oomScoreAdj).
import { isAbsolute } from 'node:path';
import type { IdMapping, Process } from '../../../oci/spec.js';
import { invalidArgument } from '../errors.js';
import type { SpawnRequest } from '../native/types.js';
import { toCapabilitySets } from './capabilities.js';
import { isMapped } from './linux.js';
import { toRlimits } from './rlimits.js';

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export type ProcessParts = Pick<
  SpawnRequest,
  | 'args'
  | 'env'
  | 'cwd'
  | 'uid'
  | 'gid'
  | 'additionalGids'
  | 'umask'
  | 'terminal'
  | 'capabilities'
  | 'noNewPrivileges'
  | 'rlimits'
  | 'oomScoreAdj'
>;

/** With a user namespace, the ids must be mapped in it. */
export interface IdMaps {
  uid: readonly IdMapping[];
  gid: readonly IdMapping[];
}

function checkId(value: unknown, field: string, maps: readonly IdMapping[] | undefined): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xfffffffe) {
    throw invalidArgument(
      `${field}: must be an integer in 0..4294967294, got ${JSON.stringify(value)}`,
    );
  }
  if (maps !== undefined && !isMapped(value, maps)) {
    throw invalidArgument(`${field}: ${value} is not mapped in the container's user namespace`);
  }
  return value;
}

export function toProcessParts(
  proc: Process | undefined,
  field: string,
  maps?: IdMaps,
): ProcessParts {
  const raw: unknown = proc;
  if (typeof raw !== 'object' || raw === null || proc === undefined) {
    throw invalidArgument(`${field}: missing`);
  }
  const args = proc.args;
  if (!Array.isArray(args) || args.length === 0 || args.some((a) => typeof a !== 'string')) {
    throw invalidArgument(`${field}.args: must be a non-empty list of strings`);
  }
  if (typeof proc.cwd !== 'string' || !isAbsolute(proc.cwd)) {
    throw invalidArgument(
      `${field}.cwd: must be an absolute path, got ${JSON.stringify(proc.cwd)}`,
    );
  }
  const env = proc.env ?? [DEFAULT_PATH];
  if (!Array.isArray(env) || env.some((e) => typeof e !== 'string' || !e.includes('='))) {
    throw invalidArgument(`${field}.env: entries must be NAME=value strings`);
  }
  const rawUser: unknown = proc.user;
  if (typeof rawUser !== 'object' || rawUser === null) {
    throw invalidArgument(`${field}.user: missing`);
  }
  const user = proc.user;
  const parts: ProcessParts = {
    args,
    env,
    cwd: proc.cwd,
    uid: checkId(user.uid, `${field}.user.uid`, maps?.uid),
    gid: checkId(user.gid, `${field}.user.gid`, maps?.gid),
  };
  if (user.additionalGids !== undefined) {
    parts.additionalGids = user.additionalGids.map((g, i) =>
      checkId(g, `${field}.user.additionalGids[${i}]`, maps?.gid),
    );
  }
  if (user.umask !== undefined) {
    if (!Number.isInteger(user.umask) || user.umask < 0 || user.umask > 0o7777) {
      throw invalidArgument(`${field}.user.umask: must be an integer in 0..0o7777`);
    }
    parts.umask = user.umask;
  }
  if (proc.terminal === true) {
    const size = proc.consoleSize;
    parts.terminal = { rows: size?.height ?? 0, cols: size?.width ?? 0 };
    for (const [k, v] of Object.entries(parts.terminal)) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffff) {
        throw invalidArgument(`${field}.consoleSize: ${k} must be an integer in 0..65535`);
      }
    }
  }
  const caps = toCapabilitySets(proc.capabilities, `${field}.capabilities`);
  if (caps !== undefined) parts.capabilities = caps;
  if (proc.noNewPrivileges === true) parts.noNewPrivileges = true;
  if (proc.rlimits !== undefined) parts.rlimits = toRlimits(proc.rlimits, `${field}.rlimits`);
  if (proc.oomScoreAdj !== undefined) {
    if (
      !Number.isInteger(proc.oomScoreAdj) ||
      proc.oomScoreAdj < -1000 ||
      proc.oomScoreAdj > 1000
    ) {
      throw invalidArgument(`${field}.oomScoreAdj: must be an integer in -1000..1000`);
    }
    parts.oomScoreAdj = proc.oomScoreAdj;
  }
  return parts;
}
