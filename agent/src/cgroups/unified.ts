import type { LinuxResources } from '../../../oci/resources.js';
import { writeCgroupFile } from './fs.js';
import type { Controller } from './types.js';
import { invalidArgument } from '../errors.js';
import { F, object } from './fields.js';

/**
 * linux.resources.unified: cgroup v2 files written as given, after the
 * typed fields, so they win where both say something (runc's order).
 * validate.ts has made sure every key is a plain file name.
 */
export const unifiedController: Controller = {
  name: 'unified',
  async apply(resources: LinuxResources, dir: string): Promise<void> {
    for (const [file, value] of Object.entries(resources.unified ?? {})) {
      await writeCgroupFile(dir, file, value, `linux.resources.unified[${JSON.stringify(file)}]`);
    }
  },
};

/** Files a container must not set through unified: they are the manager's. */
const RESERVED = new Set([
  'cgroup.procs',
  'cgroup.threads',
  'cgroup.subtree_control',
  'cgroup.freeze',
  'cgroup.kill',
  'cgroup.type',
]);

/** linux.resources.unified: plain file names the agent does not manage itself. */
export function validateUnified(v: unknown): Record<string, string> {
  const field = `${F}.unified`;
  const o = object(v, field);
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(o)) {
    const f = `${field}[${JSON.stringify(key)}]`;
    // A plain "controller.file" name: never a path that leaves the cgroup.
    if (!/^[a-z_]+\.[\w.]+$/.test(key) || key.includes('..')) {
      throw invalidArgument(`${f}: not a cgroup file name`);
    }
    if (RESERVED.has(key)) throw invalidArgument(`${f}: managed by the agent`);
    if (typeof value !== 'string') throw invalidArgument(`${f}: value must be a string`);
    out[key] = value;
  }
  return out;
}
