import { closeSync, existsSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { startDetachedProgram } from '../sys/detached.js';
import { RuntimeError } from '../sys/errors.js';
import { packageRoot } from '../sys/package-root.js';

/** The per-process shim's file name (native/host/shim.c); process listings tell shims by it. */
export const SHIM_PROGRAM = 'kapsel-shim';

export interface ShimSpawnOptions {
  /** The sandbox process's shim socket (vm-dir.ts `shims`). */
  socket: string;
  id: string;
  execId: string;
  consoleSocket?: string;
  /** The shim's own log (not the container's stderr). */
  logFile: string;
  /** argv prefix putting it in a namespace: the container's shim lives in its network namespace. */
  enter?: readonly string[];
}

/** The shim program: build/native/kapsel-shim, or KAPSEL_SHIM. */
export function shimPath(): string {
  const path = process.env['KAPSEL_SHIM'] ?? join(packageRoot(), 'build/native', SHIM_PROGRAM);
  if (!existsSync(path))
    throw new RuntimeError(`start the shim: ${path} not found; run make -C native`);
  return path;
}

/**
 * Starts the shim for one guest process with our stdio (the caller's, as
 * runc's init inherits it) and returns its pid once the sandbox process
 * relays for it.
 */
export async function startShim(o: ShimSpawnOptions): Promise<number> {
  const args = [
    '--socket',
    o.socket,
    '--log',
    o.logFile,
    '--log-format',
    'json',
    ...(o.execId === '' ? [] : ['--exec-id', o.execId]),
    ...(o.consoleSocket === undefined ? [] : ['--console-socket', o.consoleSocket]),
    // An id may start with '-' (runc takes it): never read it as an option.
    '--',
    o.id,
  ];
  const program = [shimPath()];
  if (o.consoleSocket !== undefined) {
    // With a terminal the caller's stdio is not the container's: hold none of it.
    const devnull = openSync('/dev/null', 'r+');
    try {
      return await startDetachedProgram(
        program,
        args,
        [devnull, devnull, devnull],
        'start the shim',
        o.enter,
      );
    } finally {
      closeSync(devnull);
    }
  }
  return startDetachedProgram(program, args, [0, 1, 2], 'start the shim', o.enter);
}
