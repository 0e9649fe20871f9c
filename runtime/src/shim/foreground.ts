import type { Logger } from 'pino';
import { Relay, type ProcessRef } from './relay.js';

export interface ForegroundOptions {
  /** The process has a terminal: the caller's becomes it (raw, resizes forwarded). */
  terminal: boolean;
  log: Logger;
  /** Runs once output is relayed, before input is: a foreground run starts its container here. */
  beforeInput?: () => Promise<void>;
}

/**
 * A foreground `run` or `exec`: this process is the guest process's shim,
 * on the caller's own stdio. Returns the process's exit code (128+n when
 * signal n killed it, as runc reports it).
 */
export async function runForeground(p: ProcessRef, o: ForegroundOptions): Promise<number> {
  const raw = o.terminal && process.stdin.isTTY;
  if (raw) process.stdin.setRawMode(true);
  const relay = new Relay(
    p,
    o.terminal ? { stdout: process.stdout } : { stdout: process.stdout, stderr: process.stderr },
    o.log,
  );
  try {
    // Before the start: the container may print and be signalled before
    // start() returns here, and runc forwards from the moment it exists
    // (its signal handler is installed before the container starts).
    relay.forwardSignals();
    await o.beforeInput?.();
    relay.takeInput(process.stdin);
    if (o.terminal && process.stdout.isTTY) {
      const resize = (): void => {
        relay.resize(process.stdout.rows, process.stdout.columns);
      };
      resize();
      process.stdout.on('resize', resize);
      relay.onClose(() => process.stdout.off('resize', resize));
    }
    return (await relay.wait()).exitCode;
  } finally {
    relay.close();
    if (raw) process.stdin.setRawMode(false);
    process.stdin.pause();
  }
}
