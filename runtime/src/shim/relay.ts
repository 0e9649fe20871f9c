import type { Logger } from 'pino';
import type { WaitProcessResponse } from '../../../proto/generated/agent.js';
import type { AgentClient } from '../agent/client.js';
import { signalNumber } from '../signals.js';

/** One process in the guest: a container's init (execId '') or an exec. */
export interface ProcessRef {
  agent: AgentClient;
  id: string;
  execId: string;
}

/** Signals a shim (or a foreground run/exec) passes on, as runc's signal handler does. */
export const FORWARDED_SIGNALS = [
  'SIGTERM',
  'SIGINT',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR1',
  'SIGUSR2',
  'SIGALRM',
  'SIGCONT',
] as const;

/** Copies a process's stdout or stderr to `sink` until the process closes it. */
export async function pumpOutput(
  p: ProcessRef,
  which: 'stdout' | 'stderr',
  sink: NodeJS.WritableStream,
): Promise<void> {
  for await (const chunk of p.agent.readOutput(which, p.id, p.execId)) {
    if (!sink.write(chunk)) await new Promise((resolve) => sink.once('drain', resolve));
  }
}

/** Feeds `source` to the process's stdin, in order, and closes it at EOF. */
export function relayStdin(p: ProcessRef, source: NodeJS.ReadableStream, log: Logger): void {
  let chain = Promise.resolve();
  const close = (): void => {
    chain = chain.then(() => p.agent.closeStdin(p.id, p.execId)).catch(() => undefined);
  };
  source.on('data', (chunk: Buffer | string) => {
    source.pause();
    chain = chain
      .then(() => p.agent.writeStdin(p.id, Buffer.from(chunk), p.execId))
      .catch((err: unknown) => {
        log.debug({ err }, 'stdin write failed');
      })
      .finally(() => source.resume());
  });
  source.once('end', close);
  source.once('error', close);
}

/** Passes the signals this process receives on to the guest process. */
export function forwardSignals(p: ProcessRef, log: Logger): () => void {
  const handlers: [NodeJS.Signals, () => void][] = [];
  for (const name of FORWARDED_SIGNALS) {
    const handler = (): void => {
      p.agent.signalProcess(p.id, signalNumber(name), p.execId).catch((err: unknown) => {
        log.debug({ err, signal: name }, 'forwarding signal failed');
      });
    };
    process.on(name, handler);
    handlers.push([name, handler]);
  }
  return () => {
    for (const [name, handler] of handlers) process.off(name, handler);
  };
}

/** Waits for the process to end; output still in flight gets `drainMs` to arrive. */
export async function waitAndDrain(
  p: ProcessRef,
  outputs: Promise<unknown>,
  drainMs = 5000,
): Promise<WaitProcessResponse> {
  const exit = await p.agent.waitProcess(p.id, p.execId);
  await Promise.race([
    outputs.catch(() => undefined),
    new Promise((resolve) => setTimeout(resolve, drainMs).unref()),
  ]);
  return exit;
}

/** Signals whose default action ends a Node process, so a shim can die by them. */
const RAISABLE = new Set([1, 2, 3, 6, 9, 12, 14, 15]);

/**
 * Ends this process the way the guest process ended: by the same signal
 * when it was killed (so a waiting containerd sees WIFSIGNALED, as with
 * runc), else with its exit code.
 */
export function exitLike(exit: WaitProcessResponse): never {
  if (exit.signal > 0 && RAISABLE.has(exit.signal)) {
    const name = Object.entries(signalNames()).find(([, n]) => n === exit.signal)?.[0];
    if (name !== undefined) {
      process.removeAllListeners(name);
      process.kill(process.pid, name);
      // The kernel delivers it to one of our threads; give it the moment.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
    }
  }
  process.exit(exit.exitCode);
}

function signalNames(): Record<string, number> {
  return {
    SIGHUP: 1,
    SIGINT: 2,
    SIGQUIT: 3,
    SIGABRT: 6,
    SIGKILL: 9,
    SIGUSR2: 12,
    SIGALRM: 14,
    SIGTERM: 15,
  };
}
