// The native surface as the rest of the agent sees it. real.ts implements it
// over libkapsel (through ffi.ts); fake.ts records calls for unit tests.
import { constants } from 'node:os';
import type { Readable, Writable } from 'node:stream';

/** Namespaces the container init gets new copies of (clone flags). */
export type NamespaceKind = 'mount' | 'uts' | 'ipc' | 'pid' | 'network' | 'cgroup' | 'user';

export interface MountSpec {
  /** A host path for bind mounts, else what mount(2) takes ("proc", "tmpfs", ...). */
  source: string;
  /** Absolute, inside the container. */
  target: string;
  /** "" for bind mounts. */
  fstype: string;
  /** MS_* flags, as mount-options.ts computes them. */
  flags: number;
  /** MS_SHARED/SLAVE/PRIVATE/UNBINDABLE (| MS_REC), applied after the mount. */
  propagation?: number;
  /** Filesystem options, e.g. "mode=755,size=65536k". */
  data: string;
}

/** An existing namespace to enter with setns(2) before cloning. */
export interface JoinNamespace {
  kind: NamespaceKind;
  /** e.g. /proc/<pid>/ns/net */
  path: string;
}

export interface SpawnRequest {
  namespaces: readonly NamespaceKind[];
  /** Entered first; an exec into a running container joins all of them and has no rootfs. */
  joinNamespaces?: readonly JoinNamespace[];
  /** Absolute path as the agent sees it. Needs a new mount namespace. */
  rootfs?: string;
  readonlyRootfs?: boolean;
  /** OCI linux.rootfsPropagation as MS_* flags; default MS_SLAVE|MS_REC as in runc. */
  rootPropagation?: number;
  /** In order; a tmpfs on /dev gets the default device nodes and symlinks. */
  mounts: readonly MountSpec[];
  /** Needs a new uts namespace. */
  hostname?: string;
  args: readonly string[];
  /** "NAME=value"; its PATH is where args[0] is looked up. */
  env: readonly string[];
  cwd: string;
  uid: number;
  gid: number;
  additionalGids?: readonly number[];
  /** Default 0o022. */
  umask?: number;
  /**
   * A cgroup v2 directory (e.g. /sys/fs/cgroup/kapsel/<id>) the init is born
   * in (clone3 CLONE_INTO_CGROUP); with a 'cgroup' namespace, its root.
   */
  cgroup?: string;
  /** stdio is a new pty; rows/cols 0 leave the kernel's default size. */
  terminal?: { rows: number; cols: number };
  /** Capability bit masks; absent: the init keeps what it has (root: all). */
  capabilities?: CapabilitySets;
  noNewPrivileges?: boolean;
  rlimits?: readonly RlimitSpec[];
  oomScoreAdj?: number;
  maskedPaths?: readonly string[];
  readonlyPaths?: readonly string[];
  /** Keys relative to /proc/sys with slashes ("net/ipv4/ip_forward"). */
  sysctl?: readonly SysctlSpec[];
  devices?: readonly DeviceSpec[];
  seccomp?: SeccompProgram;
  /** With a 'user' namespace: uid_map / gid_map contents. */
  uidMap?: string;
  gidMap?: string;
}

export interface RlimitSpec {
  /** setrlimit(2) resource number. */
  resource: number;
  soft: bigint;
  hard: bigint;
}

export interface SysctlSpec {
  key: string;
  value: string;
}

export interface CapabilitySets {
  bounding: bigint;
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
  ambient: bigint;
}

export interface DeviceSpec {
  path: string;
  /** S_IFCHR / S_IFBLK / S_IFIFO | permission bits. */
  mode: number;
  major: number;
  minor: number;
  uid: number;
  gid: number;
}

/** An OCI seccomp profile in libseccomp's numbers (spec/seccomp.ts). */
export interface SeccompProgram {
  defaultAction: number;
  flags: number;
  /** libseccomp arch names, e.g. "x86_64". */
  architectures: readonly string[];
  rules: readonly SeccompRule[];
}

export interface SeccompRule {
  name: string;
  action: number;
  args: readonly { index: number; op: number; value: bigint; valueTwo: bigint }[];
}

/** How the container init ended: signal is 0 when it exited, else exitCode is 128 + signal. */
export interface ProcessExit {
  exitCode: number;
  signal: number;
}

/**
 * A container init that has been set up and waits before execve (runc's
 * "created" state): namespaces, mounts, pivot_root, user and cwd are done
 * and args[0] has been found.
 */
export interface ContainerProcess {
  /** In the agent's pid namespace. */
  readonly pid: number;
  /**
   * Pipes to the init. They are the caller's to close: a stream nobody reads
   * never sees EOF and holds its fd, so destroy() what you do not consume.
   */
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Lets it execve; resolves once it did, rejects with NativeError if execve failed. */
  start(): Promise<void>;
  /** kill(2) on the init; ignored once it has been reaped. */
  signal(signo: number): void;
  /** TIOCSWINSZ on the pty master; throws NativeError without a terminal. */
  resize(rows: number, cols: number): void;
  /** Whether stdio is a terminal (then stderr ends at once). */
  readonly terminal: boolean;
  /** Resolves when the init has been reaped; all its pipes see EOF after it. */
  readonly exited: Promise<ProcessExit>;
}

export interface Native {
  /** Resolves once the init is set up and waiting (READY); rejects with NativeError. */
  spawn(req: SpawnRequest): Promise<ContainerProcess>;
  /** A mount in the agent's own namespace (guest shares); creates the target. */
  mount(source: string, target: string, fstype: string, flags: number, data: string): Promise<void>;
  /** umount2(2); flags e.g. MNT_DETACH. */
  umount(target: string, flags?: number): Promise<void>;
  /**
   * Loads `program` (struct bpf_insn array) as a BPF_PROG_TYPE_CGROUP_DEVICE
   * program and attaches it to the cgroup directory (BPF_F_ALLOW_MULTI);
   * detaches and closes `replaceFd` when given. Returns the new program's fd,
   * to be replaced or closed later; throws NativeError.
   */
  attachDeviceFilter(cgroupDir: string, program: Buffer, replaceFd?: number): number;
  /**
   * _exit(2): ends the agent without exit handlers. process.exit() runs
   * libuv's, which join the threadpool, and a threadpool write to a
   * virtio-serial port whose host has gone blocks forever.
   */
  exit(status: number): never;
  /**
   * malloc_trim(3): hands the malloc heap's free pages back to the kernel.
   * glibc keeps freed memory for reuse; after a burst of large requests that
   * is tens of MB the guest cannot use otherwise.
   */
  trimMemory(): void;
  /**
   * mallopt(3): tunes glibc's allocator (oci/process/idle-memory.ts says
   * which options and why); throws if glibc refuses.
   */
  mallopt(param: number, value: number): void;
  /**
   * Mixes `entropy` into the kernel's input pool crediting every bit
   * (RNDADDENTROPY), then makes the CRNG reseed from it now (RNDRESEEDCRNG)
   * rather than at its next scheduled reseed, up to a minute later once
   * the RNG is ready (drivers/char/random.c, Linux 5.18+). Both need
   * CAP_SYS_ADMIN; throws NativeError.
   */
  reseedRandom(entropy: Buffer): void;
  /** clock_settime(CLOCK_REALTIME) to `ns` since the epoch; throws NativeError. */
  setRealtime(ns: bigint): void;
}

const ERRNO_NAMES = new Map<number, string>(
  Object.entries(constants.errno).map(([name, value]) => [value, name]),
);

/** A failure reported by libkapsel: the step, the path and the errno, crun style. */
export class NativeError extends Error {
  override readonly name = 'NativeError';
  /** Symbolic errno, e.g. "ENOENT" (Node's convention for system errors). */
  readonly code: string;
  readonly syscall: string | undefined;
  readonly path: string | undefined;

  constructor(
    message: string,
    /** Positive errno. */
    readonly errno: number,
    details: { syscall?: string | undefined; path?: string | undefined } = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.code = ERRNO_NAMES.get(errno) ?? `E${errno}`;
    this.syscall = details.syscall;
    this.path = details.path;
  }
}
