import { readFileSync } from 'node:fs';

/** The first cgroup v2 mount here (/sys/fs/cgroup, or a hybrid host's .../unified). */
export const cgroup2Root: string | undefined = readFileSync('/proc/self/mountinfo', 'utf8')
  .split('\n')
  .map((l) => l.split(' '))
  .find((f) => f[f.indexOf('-') + 1] === 'cgroup2')?.[4];
