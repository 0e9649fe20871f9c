import { SpecError } from './error.js';
import { array, int, object, optStr, str, strings } from './fields.js';

/**
 * linux.seccomp's shape (runtime-spec config-linux.md#seccomp). Actions,
 * operators and syscall names are checked where the profile is compiled
 * (the agent), which knows the guest's syscall table.
 */
export function validateSeccomp(v: unknown, field: string): void {
  const o = object(v, field);
  str(o['defaultAction'], `${field}.defaultAction`);
  if (o['defaultErrnoRet'] !== undefined) int(o['defaultErrnoRet'], `${field}.defaultErrnoRet`, 0);
  for (const k of ['architectures', 'flags']) {
    if (o[k] !== undefined) strings(o[k], `${field}.${k}`);
  }
  optStr(o, 'listenerPath', field);
  optStr(o, 'listenerMetadata', field);
  if (o['syscalls'] === undefined || o['syscalls'] === null) return;
  array(o['syscalls'], `${field}.syscalls`).forEach((s, i) => {
    const f = `${field}.syscalls[${i}]`;
    const sc = object(s, f);
    strings(sc['names'], `${f}.names`);
    str(sc['action'], `${f}.action`);
    if (sc['errnoRet'] !== undefined) int(sc['errnoRet'], `${f}.errnoRet`, 0);
    if (sc['args'] === undefined || sc['args'] === null) return;
    array(sc['args'], `${f}.args`).forEach((a, j) => {
      const af = `${f}.args[${j}]`;
      const arg = object(a, af);
      int(arg['index'], `${af}.index`, 0, 5);
      for (const k of ['value', 'valueTwo']) {
        const n = arg[k];
        if (n !== undefined && (typeof n !== 'number' || n < 0 || !Number.isInteger(n))) {
          throw new SpecError(`${af}.${k}`, 'must be a non-negative integer');
        }
      }
      str(arg['op'], `${af}.op`);
    });
  });
}
