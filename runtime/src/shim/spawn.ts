import { closeSync, openSync } from 'node:fs';
import { startDetached } from '../sys/detached.js';

export interface ShimSpawnOptions {
  root: string;
  socket: string;
  id: string;
  execId: string;
  consoleSocket?: string;
  /** The shim's own log (not the container's stderr). */
  logFile: string;
  /** argv prefix putting it in a namespace: the container's shim lives in its network namespace. */
  enter?: readonly string[];
}

/**
 * Starts the shim for one guest process with our stdio (the caller's, as
 * runc's init inherits it) and returns its pid once it relays.
 */
export async function startShim(o: ShimSpawnOptions): Promise<number> {
  const args = [
    '--root',
    o.root,
    '--log',
    o.logFile,
    '--log-format',
    'json',
    '__shim',
    '--socket',
    o.socket,
    ...(o.execId === '' ? [] : ['--exec-id', o.execId]),
    ...(o.consoleSocket === undefined ? [] : ['--console-socket', o.consoleSocket]),
    // An id may start with '-' (runc takes it): never read it as an option.
    '--',
    o.id,
  ];
  if (o.consoleSocket !== undefined) {
    // With a terminal the caller's stdio is not the container's: hold none of it.
    const devnull = openSync('/dev/null', 'r+');
    try {
      return await startDetached(args, [devnull, devnull, devnull], 'start the shim', o.enter);
    } finally {
      closeSync(devnull);
    }
  }
  return startDetached(args, [0, 1, 2], 'start the shim', o.enter);
}
