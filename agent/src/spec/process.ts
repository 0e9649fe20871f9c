// An OCI process (config.json's "process", or ExecProcess's process_json)
// as the parts of a spawn request it decides: argv, env, user, terminal and
// the per-process lock-down (capabilities, noNewPrivileges, rlimits,
// oomScoreAdj).
import type { IdMapping, Process } from '../../../oci/spec.js';
import { given, validateProcess } from '../../../oci/validate/index.js';
import { invalidArgument, specErrors } from '../errors.js';
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

function mapped(id: number, field: string, maps: readonly IdMapping[] | undefined): number {
  if (maps !== undefined && !isMapped(id, maps)) {
    throw invalidArgument(`${field}: ${id} is not mapped in the container's user namespace`);
  }
  return id;
}

/**
 * The spawn parts of a process, validated first by the shared validator
 * (oci/validate); what only the container knows (its id mappings) is
 * checked here. @throws AgentError invalid-argument naming the field
 */
export function toProcessParts(
  value: Process | undefined,
  field: string,
  maps?: IdMaps,
): ProcessParts {
  const proc = specErrors(() => validateProcess(value, field));
  const user = proc.user;
  const parts: ProcessParts = {
    args: proc.args ?? [],
    env: proc.env ?? [DEFAULT_PATH],
    cwd: proc.cwd,
    uid: mapped(user.uid, `${field}.user.uid`, maps?.uid),
    gid: mapped(user.gid, `${field}.user.gid`, maps?.gid),
  };
  if (given(user.additionalGids)) {
    parts.additionalGids = user.additionalGids.map((g, i) =>
      mapped(g, `${field}.user.additionalGids[${i}]`, maps?.gid),
    );
  }
  if (given(user.umask)) parts.umask = user.umask;
  if (proc.terminal === true) {
    const size = proc.consoleSize;
    parts.terminal = { rows: size?.height ?? 0, cols: size?.width ?? 0 };
  }
  const caps = toCapabilitySets(proc.capabilities);
  if (caps !== undefined) parts.capabilities = caps;
  if (proc.noNewPrivileges === true) parts.noNewPrivileges = true;
  if (given(proc.rlimits)) parts.rlimits = toRlimits(proc.rlimits);
  if (given(proc.oomScoreAdj)) {
    parts.oomScoreAdj = proc.oomScoreAdj;
  }
  return parts;
}
