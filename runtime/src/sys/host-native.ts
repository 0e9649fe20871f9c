// The one runtime module that imports koffi: it loads libkapsel-host.so (the
// shim's terminal helpers, native/host/console.c) and types every function.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from './package-root.js';
import type { Malloc } from '../../../oci/process/idle-memory.js';

// Loaded on first use: only a shim with --console-socket needs it, and every
// other kapsel call should not pay for loading a native module.
type Koffi = typeof import('koffi');

/** The host-side native surface; every call returns 0 or a negative errno. */
export interface HostNative {
  /** Opens a pty pair, the slave raw; fills `out` with [master, slave]. */
  openpty(out: Int32Array): number;
  /** Sends `fd` with SCM_RIGHTS over the unix socket at `path`, `name` as payload. */
  sendFd(path: string, fd: number, name: string): number;
  /** TIOCGWINSZ into `out` as [rows, columns]. */
  getWinsize(fd: number, out: Uint32Array): number;
  /** TIOCSCTTY: makes `fd` the caller's controlling terminal. */
  setCtty(fd: number): number;
  close(fd: number): number;
}

let loaded: HostNative | undefined;

export function loadHostNative(): HostNative {
  if (loaded !== undefined) return loaded;
  const path =
    process.env['KAPSEL_HOST_NATIVE_LIB'] ?? join(packageRoot(), 'build/native/libkapsel-host.so');
  if (!existsSync(path)) throw new Error(`${path} not found; run make -C native`);
  const koffi = createRequire(import.meta.url)('koffi') as Koffi;
  const lib = koffi.load(path);
  const openpty = lib.func('int kapsel_host_openpty(int *master, int *slave)');
  const sendFd = lib.func('int kapsel_host_send_fd(const char *path, int fd, const char *name)');
  const getWinsize = lib.func(
    'int kapsel_host_get_winsize(int fd, unsigned int *rows, unsigned int *cols)',
  );
  const setCtty = lib.func('int kapsel_host_set_ctty(int fd)');
  const close = lib.func('int kapsel_host_close(int fd)');
  loaded = {
    openpty: (out) => {
      const m = new Int32Array(1);
      const s = new Int32Array(1);
      const r = openpty(m, s) as number;
      out[0] = m[0] ?? -1;
      out[1] = s[0] ?? -1;
      return r;
    },
    sendFd: (p, fd, name) => sendFd(p, fd, name) as number,
    getWinsize: (fd, out) => {
      const rows = new Uint32Array(1);
      const cols = new Uint32Array(1);
      const r = getWinsize(fd, rows, cols) as number;
      out[0] = rows[0] ?? 0;
      out[1] = cols[0] ?? 0;
      return r;
    },
    setCtty: (fd) => setCtty(fd) as number,
    close: (fd) => close(fd) as number,
  };
  return loaded;
}

interface LibcMalloc {
  trim: () => number;
  mallopt: (param: number, value: number) => number;
}

let libcMalloc: LibcMalloc | undefined;

function libc(): LibcMalloc {
  if (libcMalloc === undefined) {
    const lib = (createRequire(import.meta.url)('koffi') as Koffi).load('libc.so.6');
    const trim = lib.func('int malloc_trim(size_t pad)');
    const mallopt = lib.func('int mallopt(int param, int value)');
    libcMalloc = {
      trim: () => trim(0) as number,
      mallopt: (param, value) => mallopt(param, value) as number,
    };
  }
  return libcMalloc;
}

/**
 * The host process's glibc allocator (oci/process/idle-memory.ts's
 * Malloc): malloc_trim(3), which gives the C heap's free pages back to the
 * kernel (glibc keeps what nghttp2 and libuv freed for reuse, so a
 * long-lived process that took thousands of connections holds their
 * peak), and mallopt(3). Only libc is loaded for it, not
 * libkapsel-host.so.
 */
export const hostMalloc: Malloc = {
  trim: () => {
    libc().trim();
  },
  mallopt: (param, value) => {
    if (libc().mallopt(param, value) !== 1) throw new Error(`mallopt ${param} ${value}: refused`);
  },
};
