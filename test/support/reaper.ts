import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';

// A test process as a child subreaper (prctl PR_SET_CHILD_SUBREAPER, as
// containerd's shim is): the detached processes kapsel leaves (shims,
// sandbox processes) are reparented to it when their starter exits, so a
// test can learn how a shim ended, as containerd does. Only pids asked for
// are reaped (libuv reaps the children it spawned itself).

type Koffi = typeof import('koffi');
const PR_SET_CHILD_SUBREAPER = 36;
const WNOHANG = 1;

interface Libc {
  prctl: (option: number, a: number, b: number, c: number, d: number) => number;
  waitpid: (pid: number, status: Int32Array, options: number) => number;
}

let libc: Libc | undefined;

function load(): Libc {
  if (libc !== undefined) return libc;
  const koffi = createRequire(import.meta.url)('koffi') as Koffi;
  const lib = koffi.load('libc.so.6');
  libc = {
    prctl: lib.func(
      'int prctl(int option, unsigned long a, unsigned long b, unsigned long c, unsigned long d)',
    ) as Libc['prctl'],
    waitpid: lib.func('int waitpid(int pid, _Out_ int *status, int options)') as Libc['waitpid'],
  };
  return libc;
}

/** Makes this process the reaper of its orphaned descendants. */
export function becomeSubreaper(): void {
  if (load().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) !== 0) {
    throw new Error('prctl(PR_SET_CHILD_SUBREAPER) failed');
  }
}

export interface Reaped {
  code: number | null;
  signal: number | null;
}

/** Waits up to `ms` for our (adopted) child `pid` to end and reaps it; undefined on timeout. */
export async function reap(pid: number, ms: number): Promise<Reaped | undefined> {
  const status = new Int32Array(1);
  for (let t = 0; t <= ms; t += 100) {
    const r = load().waitpid(pid, status, WNOHANG);
    if (r === pid) {
      const s = status[0] ?? 0;
      return (s & 0x7f) === 0
        ? { code: (s >> 8) & 0xff, signal: null }
        : { code: null, signal: s & 0x7f };
    }
    if (r < 0) return undefined; // not our child
    await sleep(100);
  }
  return undefined;
}

/** Reaps every zombie child of ours (what adopted processes left), so nothing lingers. */
export function reapZombies(): void {
  const status = new Int32Array(1);
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z' && Number(fields[1]) === process.pid) {
        load().waitpid(Number(e), status, WNOHANG);
      }
    } catch {
      // gone
    }
  }
}
