// Host memory of processes as the benchmarks count it.
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { SHIM_PROGRAM } from '../runtime/src/shim/spawn.js';

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
          : cmd.includes(SHIM_PROGRAM)
            ? 'kapsel per-process shim'
            : (cmd.split(' ')[0]?.split('/').pop() ?? '?');
    by[name] = (by[name] ?? 0) + pssKiB(pid) / 1024;
  }
  return by;
}

/**
 * One process's memory by kind, in KiB, from /proc/PID/smaps (kernel
 * Documentation/filesystems/proc.rst): `ram` is guest RAM that lives in a
 * tmpfs or memfd file (QEMU's and virtiofsd's shared mappings of it),
 * `tcg` TCG's translation buffer (QEMU 7.2 allocates it as one private
 * anonymous mapping that is writable and executable, tcg/region.c
 * alloc_code_gen_buffer_anon), `anon` the rest of the private memory (heap,
 * stacks, Node's V8 heap), `file` what is mapped from files on disk
 * (binaries, libraries, the kernel, the guest image), split among all
 * processes that map it.
 */
export interface MappingPss {
  ram: number;
  /**
   * A 9p clone's guest RAM: its private (copy-on-write) mapping of its
   * template's `ram` file (template/start.ts). Its PSS is the whole cost:
   * the pages the guest wrote are the clone's own, the rest are the
   * template file's page-cache pages, split among every clone that maps
   * them.
   */
  cowRam: number;
  tcg: number;
  anon: number;
  file: number;
}

/** A mapping of guest RAM: a memfd, or a file in /dev/shm (named or O_TMPFILE). */
function isRamFile(name: string): boolean {
  return name.startsWith('/memfd:') || name.startsWith('/dev/shm/');
}

/** A template's RAM file, `<templates>/<16 hex key>/ram` (template/settings.ts). */
function isTemplateRam(name: string): boolean {
  return /\/[0-9a-f]{16}\/ram$/.test(name);
}

export function mappingPssKiB(pid: number): MappingPss {
  const out: MappingPss = { ram: 0, cowRam: 0, tcg: 0, anon: 0, file: 0 };
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return out;
  }
  let kind: keyof MappingPss = 'anon';
  for (const line of text.split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ (\S{4}) \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head !== null) {
      const perms = head[1] ?? '';
      const name = head[2] ?? '';
      kind = isRamFile(name)
        ? 'ram'
        : isTemplateRam(name)
          ? 'cowRam'
          : name.startsWith('/')
            ? 'file'
            : name === '' && perms.startsWith('rwx')
              ? 'tcg'
              : 'anon';
      continue;
    }
    const pss = /^Pss:\s+(\d+) kB/.exec(line);
    if (pss !== null) out[kind] += Number(pss[1]);
  }
  return out;
}

/**
 * Guest RAM files a process holds open (memfd or /dev/shm, O_TMPFILE
 * included), by device and inode, with the memory each holds in KiB: a
 * tmpfs file's allocated blocks are in memory whether or not a process has
 * them mapped. A clone's RAM is a copy of its template's (template/start.ts):
 * pages the copy wrote but the guest has not touched since are in no
 * process's PSS, so only the file's blocks count them.
 */
export function ramFilesKiB(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (!isRamFile(link)) continue;
      const st = statSync(`/proc/${pid}/fd/${fd}`);
      out.set(`${st.dev}:${st.ino}`, (st.blocks * 512) / 1024);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}
