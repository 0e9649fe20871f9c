import type { Process } from '../spec.js';
import { validateCapabilities } from './capabilities.js';
import { SpecError } from './error.js';
import { array, int, object, optBool, optStr, str, strings } from './fields.js';
import { validateRlimits } from './rlimits.js';

/** A uid or gid: 0..2^32-2 (2^32-1 is the kernel's "no id"). */
export function checkId(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xfffffffe) {
    throw new SpecError(field, `must be an integer in 0..4294967294, got ${JSON.stringify(v)}`);
  }
  return v;
}

/**
 * An OCI process: config.json's "process", or an exec's process.json
 * (runtime-spec config.md#process). Shapes and the checks that need no
 * container: ids, capability and rlimit names, ranges.
 * @throws SpecError naming the field
 */
export function validateProcess(value: unknown, field = 'process'): Process {
  if (value === undefined || value === null) throw new SpecError(field, 'missing');
  const o = object(value, field);
  const args = o['args'];
  if (!Array.isArray(args) || args.length === 0 || args.some((a) => typeof a !== 'string')) {
    throw new SpecError(`${field}.args`, 'must be a non-empty list of strings');
  }
  if (o['commandLine'] !== undefined) str(o['commandLine'], `${field}.commandLine`);
  if (typeof o['cwd'] !== 'string' || !o['cwd'].startsWith('/')) {
    throw new SpecError(
      `${field}.cwd`,
      `must be an absolute path, got ${JSON.stringify(o['cwd'])}`,
    );
  }
  if (o['env'] !== undefined) {
    strings(o['env'], `${field}.env`).forEach((e, i) => {
      if (!e.includes('='))
        throw new SpecError(`${field}.env[${i}]`, `must be NAME=value, got ${JSON.stringify(e)}`);
    });
  }
  if (o['user'] === undefined || o['user'] === null)
    throw new SpecError(`${field}.user`, 'missing');
  const user = object(o['user'], `${field}.user`);
  checkId(user['uid'], `${field}.user.uid`);
  checkId(user['gid'], `${field}.user.gid`);
  if (user['additionalGids'] !== undefined && user['additionalGids'] !== null) {
    array(user['additionalGids'], `${field}.user.additionalGids`).forEach((g, i) =>
      checkId(g, `${field}.user.additionalGids[${i}]`),
    );
  }
  if (user['umask'] !== undefined && user['umask'] !== null) {
    int(user['umask'], `${field}.user.umask`, 0, 0o7777);
  }
  optStr(user, 'username', `${field}.user`);
  optBool(o, 'terminal', field);
  if (o['consoleSize'] !== undefined && o['consoleSize'] !== null) {
    const size = object(o['consoleSize'], `${field}.consoleSize`);
    for (const k of ['height', 'width']) {
      if (size[k] !== undefined) int(size[k], `${field}.consoleSize.${k}`, 0, 0xffff);
    }
  }
  if (o['capabilities'] !== undefined && o['capabilities'] !== null) {
    validateCapabilities(o['capabilities'], `${field}.capabilities`);
  }
  if (o['rlimits'] !== undefined && o['rlimits'] !== null) {
    validateRlimits(o['rlimits'], `${field}.rlimits`);
  }
  optBool(o, 'noNewPrivileges', field);
  if (o['oomScoreAdj'] !== undefined && o['oomScoreAdj'] !== null) {
    int(o['oomScoreAdj'], `${field}.oomScoreAdj`, -1000, 1000);
  }
  optStr(o, 'apparmorProfile', field);
  optStr(o, 'selinuxLabel', field);
  return value as Process;
}
