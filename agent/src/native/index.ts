// Entry point of the native helper for the rest of the agent.
import { loadKapselLib } from './ffi.js';
import { RealNative } from './real.js';
import type { Native } from './types.js';

export { NativeError } from './types.js';
export type {
  ContainerProcess,
  JoinNamespace,
  MountSpec,
  Native,
  NamespaceKind,
  ProcessExit,
  SpawnRequest,
} from './types.js';
export { MNT, MS, mountOptionsToFlags, type MountFlags } from './mount-options.js';

/** The real helper over libkapsel.so; throws if the library cannot be found. */
export function loadNative(): Native {
  return new RealNative(loadKapselLib());
}

/** poll(2) events (include/uapi/asm-generic/poll.h). */
export const POLLIN = 0x1;
export const POLLOUT = 0x4;

/**
 * Waits up to `timeoutMs` until `fd` has one of `events` (or an error or
 * hang-up, which poll always reports), off the main thread. Resolves to
 * the revents, 0 on timeout; rejects naming the fd if poll(2) fails.
 */
export async function pollFd(fd: number, events: number, timeoutMs: number): Promise<number> {
  // struct pollfd { int fd; short events; short revents; }
  const p = Buffer.alloc(8);
  p.writeInt32LE(fd, 0);
  p.writeInt16LE(events, 4);
  const n = await loadKapselLib().poll(p, 1, timeoutMs);
  if (n < 0) throw new Error(`poll fd ${String(fd)}: failed`);
  return n === 0 ? 0 : p.readUInt16LE(6);
}
