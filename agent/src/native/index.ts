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
