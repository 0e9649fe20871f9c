import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The interface files of a cgroup v2 leaf with every controller enabled, as
 * empty regular files in a temp directory (the kernel would refuse writes to
 * files a controller does not provide: here they are simply absent).
 */
export const LEAF_FILES = [
  'cgroup.events',
  'cgroup.freeze',
  'cgroup.procs',
  'cpu.max',
  'cpu.max.burst',
  'cpu.weight',
  'cpu.idle',
  'cpu.stat',
  'cpuset.cpus',
  'cpuset.mems',
  'io.max',
  'io.weight',
  'io.stat',
  'memory.max',
  'memory.low',
  'memory.swap.max',
  'memory.current',
  'memory.events',
  'pids.max',
  'pids.current',
  'hugetlb.2MB.max',
  'memory.high',
];

export function fakeCgroupDir(files: readonly string[] = LEAF_FILES): string {
  const dir = mkdtempSync(join(tmpdir(), 'kapsel-cgroup-'));
  mkdirSync(dir, { recursive: true });
  for (const f of files) writeFileSync(join(dir, f), '');
  return dir;
}
