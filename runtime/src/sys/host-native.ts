// The one runtime module that imports koffi: libc's allocator controls for
// the long-lived Node processes (the sandbox process, the shim v2). The
// per-process shim's terminal helpers (native/host/console.c) are C called
// from C (native/host/shim.c).
import { createRequire } from 'node:module';
import type { Malloc } from '../../../oci/process/idle-memory.js';

// Loaded on first use: every other kapsel call should not pay for loading
// a native module.
type Koffi = typeof import('koffi');

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
 * peak), and mallopt(3).
 */
export const hostMalloc: Malloc = {
  trim: () => {
    libc().trim();
  },
  mallopt: (param, value) => {
    if (libc().mallopt(param, value) !== 1) throw new Error(`mallopt ${param} ${value}: refused`);
  },
};
