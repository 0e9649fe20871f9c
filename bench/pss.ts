// Host memory of processes as the benchmarks count it.
import { readdirSync, readFileSync } from 'node:fs';

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

/** pid → parent pid and command line, for every process now. */
function processes(): Map<number, { ppid: number; cmd: string }> {
  const out = new Map<number, { ppid: number; cmd: string }>();
  for (const e of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').replaceAll('\0', ' ');
      out.set(Number(e), { ppid, cmd });
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * PSS (MiB) of the containerd shims whose command line names `dir` (a
 * private containerd's directory) and of all their descendants, summed by
 * program: the shims, kapsel's sandbox process and per-process shims, QEMU,
 * virtiofsd, the containers' processes.
 */
export function shimTreePssMiB(dir: string): Record<string, number> {
  const procs = processes();
  const all = new Set(
    [...procs]
      .filter(([, p]) => p.cmd.includes('containerd-shim') && p.cmd.includes(dir))
      .map(([pid]) => pid),
  );
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, p] of procs) {
      if (!all.has(pid) && all.has(p.ppid)) {
        all.add(pid);
        grew = true;
      }
    }
  }
  const by: Record<string, number> = {};
  for (const pid of all) {
    const cmd = procs.get(pid)?.cmd ?? '';
    const name = cmd.includes('containerd-shim-kapsel-v2')
      ? 'kapsel shim v2'
      : cmd.includes('containerd-shim-runc')
        ? 'runc shim'
        : cmd.includes('__monitor')
          ? 'kapsel sandbox process'
          : cmd.includes('__shim')
            ? 'kapsel per-process shim'
            : (cmd.split(' ')[0]?.split('/').pop() ?? '?');
    by[name] = (by[name] ?? 0) + pssKiB(pid) / 1024;
  }
  return by;
}
