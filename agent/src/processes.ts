// The processes of a container, for ListProcesses and SignalProcess.all
// (runc ps, runc kill --all). runc reads its cgroup; a container without one
// here is found by its PID namespace: every process whose
// /proc/<pid>/ns/pid is the init's.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

function nsInode(pid: number): number | undefined {
  try {
    return statSync(`/proc/${pid}/ns/pid`).ino;
  } catch {
    return undefined; // gone meanwhile
  }
}

function numericEntries(dir: string): number[] {
  return readdirSync(dir)
    .filter((e) => /^\d+$/.test(e))
    .map(Number);
}

/** Pids (agent's namespace) in the cgroup directory, subgroups included. */
function cgroupPids(dir: string): number[] {
  const out = readFileSync(join(dir, 'cgroup.procs'), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map(Number);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...cgroupPids(join(dir, e.name)));
  }
  return out;
}

/** Children, grandchildren, ... of the given pids, and the pids themselves. */
function withDescendants(roots: readonly number[]): number[] {
  const children = new Map<number, number[]>();
  for (const pid of numericEntries('/proc')) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), pid]);
    } catch {
      // gone meanwhile
    }
  }
  const out = new Set<number>();
  const todo = [...roots];
  while (todo.length > 0) {
    const pid = todo.pop() as number;
    if (out.has(pid)) continue;
    out.add(pid);
    todo.push(...(children.get(pid) ?? []));
  }
  return [...out];
}

export interface ProcessScope {
  initPid: number;
  /** The init has a PID namespace of its own. */
  ownPidNamespace: boolean;
  cgroupDir?: string | undefined;
  /** Exec'd processes, for a container sharing a pid namespace and no cgroup. */
  execPids: readonly number[];
}

/** Every process of the container, sorted, in the agent's pid namespace. */
export function containerPids(scope: ProcessScope): number[] {
  let pids: number[];
  if (scope.cgroupDir !== undefined) {
    pids = cgroupPids(scope.cgroupDir);
  } else if (scope.ownPidNamespace) {
    const ns = nsInode(scope.initPid);
    pids = ns === undefined ? [] : numericEntries('/proc').filter((p) => nsInode(p) === ns);
  } else {
    pids = withDescendants([scope.initPid, ...scope.execPids]);
  }
  return [...new Set(pids)].sort((a, b) => a - b);
}

/** kill(2) on each; a process that is already gone is not an error. */
export function signalAll(pids: readonly number[], signo: number): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signo);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }
}
