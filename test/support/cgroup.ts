import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';

/** The first cgroup v2 mount here (/sys/fs/cgroup, or a hybrid host's .../unified). */
export const cgroup2Root: string | undefined = readFileSync('/proc/self/mountinfo', 'utf8')
  .split('\n')
  .map((l) => l.split(' '))
  .find((f) => f[f.indexOf('-') + 1] === 'cgroup2')?.[4];

/**
 * A cgroup of its own under the cgroup v2 mount, for one test file's
 * standalone agent (KAPSEL_CGROUP_ROOT): the agent makes its `kapsel`
 * subtree there, so files running at once do not share (and remove) one
 * subtree, and nothing is left on the host. Undefined without cgroup v2.
 */
export function privateCgroup2Root(name: string): string | undefined {
  if (cgroup2Root === undefined) return undefined;
  const dir = join(cgroup2Root, `kapsel-test-${name}-${process.pid}`);
  mkdirSync(dir);
  return dir;
}

/** Removes what privateCgroup2Root made and the agent's subtree in it. */
export function removePrivateCgroup2Root(dir: string | undefined): void {
  if (dir === undefined) return;
  if (existsSync(join(dir, 'kapsel'))) rmdirSync(join(dir, 'kapsel'));
  rmdirSync(dir);
}
