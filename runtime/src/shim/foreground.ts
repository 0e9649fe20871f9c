import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { messageOf, RuntimeError } from '../sys/errors.js';
import { Relay, type ProcessRef } from './relay.js';
import { LOST_EXIT, waitForStopReason } from './stop-reason.js';

export interface ForegroundOptions {
  /** The process has a terminal: the caller's becomes it (raw, resizes forwarded). */
  terminal: boolean;
  log: Logger;
  /** --root: where the container's record, and a fault's stop reason, are. */
  root?: string;
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
    try {
      await o.beforeInput?.();
    } catch (err) {
      // A VM that died while the container started is lost the same way.
      throw await explainLoss(err, p.id, o.root);
    }
    relay.takeInput(process.stdin);
    if (o.terminal && process.stdout.isTTY) {
      const resize = (): void => {
        relay.resize(process.stdout.rows, process.stdout.columns);
      };
      resize();
      process.stdout.on('resize', resize);
      relay.onClose(() => process.stdout.off('resize', resize));
    }
    try {
      return (await relay.wait()).exitCode;
    } catch (err) {
      throw await explainLoss(err, p.id, o.root);
    }
  } finally {
    relay.close();
    if (raw) process.stdin.setRawMode(false);
    process.stdin.pause();
  }
}

/**
 * A connection lost mid-process is the sandbox's end (QEMU, virtiofsd or
 * the sandbox process died): say why, as the container's record will, not
 * grpc-js's "14 UNAVAILABLE: Connection dropped"; a foreground `run` deletes
 * the container afterwards, so this is the caller's only chance to learn it.
 */
async function explainLoss(err: unknown, id: string, root?: string): Promise<unknown> {
  // grpc-js's error, or ours made from it (RuntimeError.fromGrpc).
  const e = err as { code?: unknown; grpcCode?: unknown };
  if (root === undefined || (e.code ?? e.grpcCode) !== status.UNAVAILABLE) return err;
  const reason = await waitForStopReason(root, id);
  if (reason === undefined) return err;
  return new RuntimeError(`lost the process (${messageOf(err)}): ${reason}`, LOST_EXIT, {
    cause: err,
  });
}
