// The rlimits of the kapsel process itself: with runc a container inherits
// the limits of whoever ran runc (libcontainer/configs: "If Rlimits are not
// set, the container will inherit rlimits from the parent process"); in a VM
// there is no such parent, so they are written into the spec instead.
import { readFile } from 'node:fs/promises';
import type { Rlimit } from '../../../oci/spec.js';

/** /proc/self/limits row names, to RLIMIT_* (fs/proc/base.c lnames). */
const ROWS: Readonly<Record<string, string>> = {
  'Max cpu time': 'RLIMIT_CPU',
  'Max file size': 'RLIMIT_FSIZE',
  'Max data size': 'RLIMIT_DATA',
  'Max stack size': 'RLIMIT_STACK',
  'Max core file size': 'RLIMIT_CORE',
  'Max resident set': 'RLIMIT_RSS',
  'Max processes': 'RLIMIT_NPROC',
  'Max open files': 'RLIMIT_NOFILE',
  'Max locked memory': 'RLIMIT_MEMLOCK',
  'Max address space': 'RLIMIT_AS',
  'Max file locks': 'RLIMIT_LOCKS',
  'Max pending signals': 'RLIMIT_SIGPENDING',
  'Max msgqueue size': 'RLIMIT_MSGQUEUE',
  'Max nice priority': 'RLIMIT_NICE',
  'Max realtime priority': 'RLIMIT_RTPRIO',
  'Max realtime timeout': 'RLIMIT_RTTIME',
};

/** RLIM_INFINITY as JSON carries it (2^64-1 rounds to 2^64; the agent clamps it back). */
const INFINITY = 2 ** 64;

/** This process's limits, from /proc/self/limits ("unlimited" is RLIM_INFINITY). */
export async function callerRlimits(path = '/proc/self/limits'): Promise<Rlimit[]> {
  const text = await readFile(path, 'utf8');
  const out: Rlimit[] = [];
  for (const line of text.split('\n').slice(1)) {
    const name = Object.keys(ROWS).find((k) => line.startsWith(k));
    if (name === undefined) continue;
    const [soft, hard] = line.slice(name.length).trim().split(/\s+/);
    const value = (s: string | undefined): number => (s === 'unlimited' ? INFINITY : Number(s));
    out.push({ type: ROWS[name] ?? '', soft: value(soft), hard: value(hard) });
  }
  return out;
}

/** The spec's rlimits, plus the caller's for every type the spec does not set. */
export function withDefaultRlimits(
  spec: readonly Rlimit[] | undefined | null,
  caller: readonly Rlimit[],
): Rlimit[] {
  const given = spec ?? [];
  return [...given, ...caller.filter((c) => !given.some((g) => g.type === c.type))];
}
