// The one module that imports koffi: it loads libkapsel and libc and gives
// every C function it binds an explicit TypeScript signature. Everything
// else goes through the Native interface (types.ts).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';

/** Where libkapsel is looked for, in order. */
export function nativeLibraryCandidates(): string[] {
  const fromEnv = process.env['KAPSEL_NATIVE_LIB'];
  // agent/src/native/ffi.ts -> repository root; in a bundle this points
  // elsewhere and the guest image path applies.
  const inRepo = fileURLToPath(new URL('../../../build/native/libkapsel.so', import.meta.url));
  return [
    ...(fromEnv !== undefined && fromEnv !== '' ? [fromEnv] : []),
    inRepo,
    '/opt/kapsel/lib/libkapsel.so',
  ];
}

/**
 * The C functions, typed. Buffers and typed arrays are passed as pointers;
 * `err` is a RECORD_SIZE buffer that receives a struct kapsel_record.
 */
export interface KapselLib {
  /** int kapsel_spawn(const void *req, size_t len, int32_t out[5], struct kapsel_record *err) */
  spawn(req: Buffer, len: number, out: Int32Array, err: Buffer): number;
  /** int kapsel_mount(src, target, fstype, uint32 flags, uint32 propagation, data, record *err) */
  mount(
    source: string,
    target: string,
    fstype: string,
    flags: number,
    propagation: number,
    data: string,
    err: Buffer,
  ): Promise<number>;
  /** int kapsel_umount(const char *target, int32_t flags, struct kapsel_record *err) */
  umount(target: string, flags: number, err: Buffer): Promise<number>;
  /** int kapsel_bpf_device_filter(const char *cgroup, const void *insns, uint32 n, int32 replace_fd, record *err) */
  bpfDeviceFilter(
    cgroup: string,
    insns: Buffer,
    count: number,
    replaceFd: number,
    err: Buffer,
  ): number;
  /** int kapsel_pty_open_in(int32_t pid, uint32_t rows, uint32_t cols, int32_t out[4], record *err) */
  ptyOpenIn(pid: number, rows: number, cols: number, out: Int32Array, err: Buffer): number;
  /** int kapsel_tty_resize(int32_t fd, uint32_t rows, uint32_t cols, struct kapsel_record *err) */
  ttyResize(fd: number, rows: number, cols: number, err: Buffer): number;
  /** pid_t waitpid(pid_t pid, int *status, int options) */
  waitpid(pid: number, status: Int32Array, options: number): number;
  /** The calling thread's errno after the last call. */
  errno(): number;
  /** void _exit(int status) */
  exit(status: number): never;
  /** int malloc_trim(size_t pad) */
  mallocTrim(pad: number): number;
  /** int mallopt(int param, int value) */
  mallopt(param: number, value: number): number;
  /** int ioctl(int fd, unsigned long request, void *arg); errno() tells why on -1. */
  ioctl(fd: number, request: number, arg: Buffer | null): number;
  /** int clock_settime(clockid_t clk, const struct timespec *ts) */
  clockSettime(clock: number, timespec: Buffer): number;
  /**
   * int poll(struct pollfd *fds, nfds_t n, int timeout_ms), on koffi's
   * worker pool: it blocks for up to `timeoutMs`. Resolves to poll's result
   * (revents are in `fds`); -1 (errno lost on the worker) on failure.
   */
  poll(fds: Buffer, count: number, timeoutMs: number): Promise<number>;
}

type AsyncFn = (...args: unknown[]) => void;

/** koffi's `.async`: runs the call on its worker pool, node-style callback. */
function promisify(fn: { async: AsyncFn }, ...args: unknown[]): Promise<number> {
  return new Promise((resolve, reject) => {
    fn.async(...args, (err: unknown, result: unknown) => {
      if (err instanceof Error) reject(err);
      else if (err !== null && err !== undefined) reject(new Error('koffi async call failed'));
      else resolve(result as number);
    });
  });
}

let loaded: KapselLib | undefined;

/** Loads the libraries once; throws naming every path it tried. */
export function loadKapselLib(): KapselLib {
  if (loaded !== undefined) return loaded;
  const candidates = nativeLibraryCandidates();
  const path = candidates.find((p) => existsSync(p));
  if (path === undefined) {
    throw new Error(`libkapsel.so not found (tried ${candidates.join(', ')}); run make -C native`);
  }
  const lib = koffi.load(path);
  const libc = koffi.load('libc.so.6');

  const spawn = lib.func('int kapsel_spawn(const void *req, size_t len, int32_t *out, void *err)');
  const mount = lib.func(
    'int kapsel_mount(const char *source, const char *target, const char *fstype, uint32_t flags, uint32_t propagation, const char *data, void *err)',
  );
  const umount = lib.func('int kapsel_umount(const char *target, int32_t flags, void *err)');
  const bpfDeviceFilter = lib.func(
    'int kapsel_bpf_device_filter(const char *cgroup, const void *insns, uint32_t ninsns, int32_t replace_fd, void *err)',
  );
  const ptyOpenIn = lib.func(
    'int kapsel_pty_open_in(int32_t pid, uint32_t rows, uint32_t cols, int32_t *out, void *err)',
  );
  const ttyResize = lib.func(
    'int kapsel_tty_resize(int32_t fd, uint32_t rows, uint32_t cols, void *err)',
  );
  const waitpid = libc.func('int waitpid(int pid, int *status, int options)');
  const exit = libc.func('void _exit(int status)');
  const mallocTrim = libc.func('int malloc_trim(size_t pad)');
  const mallopt = libc.func('int mallopt(int param, int value)');
  const ioctl = libc.func('int ioctl(int fd, unsigned long request, ...)');
  const clockSettime = libc.func('int clock_settime(int clk, const void *ts)');
  const poll = libc.func('int poll(void *fds, unsigned long nfds, int timeout)');

  loaded = {
    // Synchronous on purpose: the monitor's PR_SET_PDEATHSIG is tied to the
    // forking thread, which must be the long-lived main thread, not a worker.
    spawn: (req, len, out, err) => spawn(req, len, out, err) as number,
    // The mount helper only forks and waits; running it on koffi's worker
    // pool keeps a slow virtio-fs mount from stalling the event loop.
    mount: (source, target, fstype, flags, propagation, data, err) =>
      promisify(mount, source, target, fstype, flags, propagation, data, err),
    umount: (target, flags, err) => promisify(umount, target, flags, err),
    // bpf(2) is quick and not namespace-bound: fine on the main thread.
    bpfDeviceFilter: (cgroup, insns, count, replaceFd, err) =>
      bpfDeviceFilter(cgroup, insns, count, replaceFd, err) as number,
    // A few syscalls on /proc and devpts: fine on the main thread.
    ptyOpenIn: (pid, rows, cols, out, err) => ptyOpenIn(pid, rows, cols, out, err) as number,
    ttyResize: (fd, rows, cols, err) => ttyResize(fd, rows, cols, err) as number,
    waitpid: (pid, status, options) => waitpid(pid, status, options) as number,
    errno: () => koffi.errno(),
    exit: (status) => {
      exit(status);
      throw new Error('_exit returned');
    },
    mallocTrim: (pad) => mallocTrim(pad) as number,
    mallopt: (param, value) => mallopt(param, value) as number,
    // Both on the calling thread, so errno() reads their errno.
    ioctl: (fd, request, arg) => ioctl(fd, request, 'void *', arg) as number,
    clockSettime: (clock, timespec) => clockSettime(clock, timespec) as number,
    // Blocks: on the worker pool, as a blocking fs.read would be.
    poll: (fds, count, timeoutMs) => promisify(poll, fds, count, timeoutMs),
  };
  return loaded;
}
