import type { DeviceCgroupRule } from '../../resources.js';
import { SpecError } from '../error.js';
import { array, bool, knownKeys, object, optInt } from '../fields.js';

/** linux.resources.devices: allow/deny rules of the device controller. */
export function validateDeviceRules(v: unknown, field: string): DeviceCgroupRule[] {
  if (v === null) return [];
  return array(v, field).map((d, i) => {
    const f = `${field}[${i}]`;
    const o = object(d, f);
    knownKeys(o, ['allow', 'type', 'major', 'minor', 'access'], f);
    const rule: DeviceCgroupRule = { allow: bool(o['allow'], `${f}.allow`) };
    const type = o['type'];
    if (type !== undefined && type !== null && type !== '') {
      if (type !== 'a' && type !== 'c' && type !== 'b') {
        throw new SpecError(`${f}.type`, `must be "a", "c" or "b", got ${JSON.stringify(type)}`);
      }
      rule.type = type;
    }
    const major = o['major'] === null ? undefined : optInt(o, 'major', f, -1);
    if (major !== undefined) rule.major = major;
    const minor = o['minor'] === null ? undefined : optInt(o, 'minor', f, -1);
    if (minor !== undefined) rule.minor = minor;
    const access = o['access'];
    if (access !== undefined && access !== null && access !== '') {
      if (typeof access !== 'string' || !/^[rwm]+$/.test(access)) {
        throw new SpecError(
          `${f}.access`,
          `must be letters of "rwm", got ${JSON.stringify(access)}`,
        );
      }
      rule.access = access;
    }
    return rule;
  });
}
