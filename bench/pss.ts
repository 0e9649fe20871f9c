// Host memory of a process as the benchmarks count it.
import { readFileSync } from 'node:fs';

/**
 * Proportional set size of one process, in KiB (0 if it is gone): shared
 * pages split among their users, so summing over processes counts each
 * page once (kernel Documentation/filesystems/proc.rst, smaps_rollup).
 */
export function pssKiB(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return Number(m?.[1] ?? 0);
  } catch {
    return 0;
  }
}
