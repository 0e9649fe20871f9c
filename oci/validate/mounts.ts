import type { Mount } from '../spec.js';
import { SpecError } from './error.js';
import { array, object, optStr, str, strings } from './fields.js';

/** Whether a mount is a bind (runc: a "bind" type or a bind/rbind option). */
export function isBindMount(m: Pick<Mount, 'type' | 'options'>): boolean {
  const o = m.options ?? [];
  return m.type === 'bind' || o.includes('bind') || o.includes('rbind');
}

/**
 * mounts (runtime-spec config.md#mounts). A relative destination is taken
 * from the container's root and a relative bind source from the bundle: the
 * runtime resolves both before the guest sees the spec.
 * @throws SpecError naming the field
 */
export function validateMounts(v: unknown, field = 'mounts'): Mount[] {
  if (v === undefined || v === null) return [];
  return array(v, field).map((m, i) => {
    const f = `${field}[${i}]`;
    const o = object(m, f);
    const destination = str(o['destination'], `${f}.destination`);
    if (destination === '') throw new SpecError(`${f}.destination`, 'must not be empty');
    const type = optStr(o, 'type', f);
    optStr(o, 'source', f);
    const options = o['options'] === undefined ? [] : strings(o['options'], `${f}.options`);
    if ((type === undefined || type === '') && !isBindMount({ options })) {
      throw new SpecError(`${f}.type`, 'missing for a non-bind mount');
    }
    if (
      isBindMount({ ...(type === undefined ? {} : { type }), options }) &&
      typeof o['source'] !== 'string'
    ) {
      throw new SpecError(`${f}.source`, 'missing for a bind mount');
    }
    return m as Mount;
  });
}
