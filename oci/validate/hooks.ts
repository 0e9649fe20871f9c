import { absPath, array, int, object, strings } from './fields.js';

const KINDS = [
  'prestart',
  'createRuntime',
  'createContainer',
  'startContainer',
  'poststart',
  'poststop',
];

/** hooks (runtime-spec config.md#posix-platform-hooks): absolute paths, positive timeouts. */
export function validateHooks(v: unknown, field = 'hooks'): void {
  const o = object(v, field);
  for (const kind of KINDS) {
    if (o[kind] === undefined || o[kind] === null) continue;
    array(o[kind], `${field}.${kind}`).forEach((h, i) => {
      const f = `${field}.${kind}[${i}]`;
      const hook = object(h, f);
      absPath(hook['path'], `${f}.path`);
      if (hook['args'] !== undefined) strings(hook['args'], `${f}.args`);
      if (hook['env'] !== undefined) strings(hook['env'], `${f}.env`);
      if (hook['timeout'] !== undefined && hook['timeout'] !== null)
        int(hook['timeout'], `${f}.timeout`, 1);
    });
  }
}
