import { SpecError } from '../error.js';
import { object } from '../fields.js';

/** Files a container must not set through unified: they are the cgroup manager's. */
const RESERVED = new Set([
  'cgroup.procs',
  'cgroup.threads',
  'cgroup.subtree_control',
  'cgroup.freeze',
  'cgroup.kill',
  'cgroup.type',
]);

/** linux.resources.unified: plain file names, never a path that leaves the cgroup. */
export function validateUnified(v: unknown, field: string): Record<string, string> {
  if (v === null) return {};
  const o = object(v, field);
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(o)) {
    const f = `${field}[${JSON.stringify(key)}]`;
    if (!/^[a-z_]+\.[\w.]+$/.test(key) || key.includes('..')) {
      throw new SpecError(f, 'not a cgroup file name');
    }
    if (RESERVED.has(key)) throw new SpecError(f, 'managed by the agent');
    if (typeof value !== 'string') throw new SpecError(f, 'value must be a string');
    out[key] = value;
  }
  return out;
}
