// OCI mount options -> mount(2) flags, propagation and data, as runc's
// parseMountOptions() (libcontainer/specconv) does it: known flag words set
// or clear MS_* bits, propagation words are kept apart (they need a mount
// call of their own), everything else is filesystem data.

export const MS = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  SYNCHRONOUS: 0x10,
  REMOUNT: 0x20,
  MANDLOCK: 0x40,
  DIRSYNC: 0x80,
  NOSYMFOLLOW: 0x100,
  NOATIME: 0x400,
  NODIRATIME: 0x800,
  BIND: 0x1000,
  MOVE: 0x2000,
  REC: 0x4000,
  SILENT: 0x8000,
  UNBINDABLE: 0x20000,
  PRIVATE: 0x40000,
  SLAVE: 0x80000,
  SHARED: 0x100000,
  RELATIME: 0x200000,
  I_VERSION: 0x800000,
  STRICTATIME: 0x1000000,
  LAZYTIME: 0x2000000,
} as const;

/** umount2(2) flags. */
export const MNT = { FORCE: 0x1, DETACH: 0x2, EXPIRE: 0x4 } as const;

/** Option word -> [clear?, flag]: clear means the word turns the flag off. */
const FLAG_OPTIONS: Readonly<Record<string, readonly [boolean, number]>> = {
  ro: [false, MS.RDONLY],
  rw: [true, MS.RDONLY],
  nosuid: [false, MS.NOSUID],
  suid: [true, MS.NOSUID],
  nodev: [false, MS.NODEV],
  dev: [true, MS.NODEV],
  noexec: [false, MS.NOEXEC],
  exec: [true, MS.NOEXEC],
  sync: [false, MS.SYNCHRONOUS],
  async: [true, MS.SYNCHRONOUS],
  dirsync: [false, MS.DIRSYNC],
  remount: [false, MS.REMOUNT],
  mand: [false, MS.MANDLOCK],
  nomand: [true, MS.MANDLOCK],
  noatime: [false, MS.NOATIME],
  atime: [true, MS.NOATIME],
  nodiratime: [false, MS.NODIRATIME],
  diratime: [true, MS.NODIRATIME],
  relatime: [false, MS.RELATIME],
  norelatime: [true, MS.RELATIME],
  strictatime: [false, MS.STRICTATIME],
  nostrictatime: [true, MS.STRICTATIME],
  lazytime: [false, MS.LAZYTIME],
  nolazytime: [true, MS.LAZYTIME],
  iversion: [false, MS.I_VERSION],
  noiversion: [true, MS.I_VERSION],
  nosymfollow: [false, MS.NOSYMFOLLOW],
  symfollow: [true, MS.NOSYMFOLLOW],
  silent: [false, MS.SILENT],
  loud: [true, MS.SILENT],
  bind: [false, MS.BIND],
  rbind: [false, MS.BIND | MS.REC],
};

const PROPAGATION_OPTIONS: Readonly<Record<string, number>> = {
  private: MS.PRIVATE,
  rprivate: MS.PRIVATE | MS.REC,
  shared: MS.SHARED,
  rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE,
  rslave: MS.SLAVE | MS.REC,
  unbindable: MS.UNBINDABLE,
  runbindable: MS.UNBINDABLE | MS.REC,
};

/** MS_* flags of a propagation name ("rslave"), or undefined. */
export function propagationFlags(name: string): number | undefined {
  return Object.hasOwn(PROPAGATION_OPTIONS, name) ? PROPAGATION_OPTIONS[name] : undefined;
}

/** Options runc handles itself and never passes to the kernel. */
const RUNTIME_ONLY = new Set(['tmpcopyup', 'idmap', 'ridmap']);

export interface MountFlags {
  flags: number;
  /** 0 when no propagation option was given. */
  propagation: number;
  /** Comma-joined filesystem options, in the order given. */
  data: string;
}

/**
 * Translates OCI mount options. Later words win ("ro,rw" is rw), as with
 * mount(8). A bind mount's ro/nosuid/... take a remount to apply; the native
 * helper does that remount when it sees MS_BIND with such flags.
 */
export function mountOptionsToFlags(options: readonly string[]): MountFlags {
  let flags = 0;
  let propagation = 0;
  const data: string[] = [];
  for (const opt of options) {
    const flag = Object.hasOwn(FLAG_OPTIONS, opt) ? FLAG_OPTIONS[opt] : undefined;
    if (flag !== undefined) {
      const [clear, bits] = flag;
      flags = clear ? flags & ~bits : flags | bits;
      continue;
    }
    const prop = Object.hasOwn(PROPAGATION_OPTIONS, opt) ? PROPAGATION_OPTIONS[opt] : undefined;
    if (prop !== undefined) {
      propagation = prop; // runc applies them in order: the last one wins
      continue;
    }
    if (RUNTIME_ONLY.has(opt) || opt === '') continue;
    data.push(opt);
  }
  return { flags: flags >>> 0, propagation, data: data.join(',') };
}
