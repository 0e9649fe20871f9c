import type { Logger } from 'pino';
import type { WaitProcessResponse } from '../../../proto/generated/agent.js';
import type { AgentClient } from '../sandbox/agent-client.js';
import { isBrokenPipe, relayOwnsStdio } from '../sys/broken-pipe.js';
import { FORWARDED_SIGNALS, signalNumber } from '../sys/signals.js';

/** One process in the guest: a container's init (execId '') or an exec. */
export interface ProcessRef {
  agent: AgentClient;
  id: string;
  execId: string;
}

/** Where a guest process's output goes on the host. */
export interface OutputSinks {
  stdout: NodeJS.WritableStream;
  /** Absent with a terminal: the guest's pty merges stderr into stdout. */
  stderr?: NodeJS.WritableStream;
}

/**
 * The one stdio relay, serving the per-process shims (in the sandbox
 * process: sandbox/shim-server.ts), a foreground `run` and a foreground
 * `exec`: the host side of one guest process. Output
 * is read from the moment it is made, so nothing the process writes early
 * is lost; input and signals are passed on from takeInput() (a foreground
 * run starts the container between the two); wait() ends with the process.
 */
export class Relay {
  readonly #p: ProcessRef;
  readonly #log: Logger;
  readonly #outputs: Promise<unknown>;
  readonly #undo: (() => void)[] = [];
  #forwarding = false;

  constructor(p: ProcessRef, sinks: OutputSinks, log: Logger) {
    this.#p = p;
    this.#log = log;
    const release = relayOwnsStdio();
    this.#undo.push(release);
    let broken = false;
    // The reader of our output went away (`exec ID yes | head -1`): the
    // guest process gets the SIGPIPE it would have got from a pipe of its
    // own, as with runc, and ends with status 141.
    const onBrokenPipe = (): void => {
      if (broken) return;
      broken = true;
      log.debug({ id: p.id, execId: p.execId }, 'output reader went away; sending SIGPIPE');
      p.agent.signalProcess(p.id, signalNumber('SIGPIPE'), p.execId).catch((err: unknown) => {
        log.debug({ err }, 'sending SIGPIPE failed');
      });
    };
    this.#outputs = Promise.all([
      pumpOutput(p, 'stdout', sinks.stdout, onBrokenPipe),
      sinks.stderr === undefined ? undefined : pumpOutput(p, 'stderr', sinks.stderr, onBrokenPipe),
    ]);
    this.#outputs.catch((err: unknown) => {
      log.debug({ err }, 'output relay ended with an error');
    });
  }

  /** Feeds `stdin` to the process and forwards the signals this process receives. */
  takeInput(stdin: NodeJS.ReadableStream): void {
    this.feedStdin(stdin);
    this.forwardSignals();
  }

  /** Passes the signals this process receives on to the guest process (from now on, once). */
  forwardSignals(): void {
    if (this.#forwarding) return;
    this.#forwarding = true;
    this.#undo.push(forwardSignals(this.#p, this.#log));
  }

  /**
   * Feeds `stdin` to the process and closes its stdin at EOF, without
   * touching this process's signals (the containerd shim serves many
   * processes; containerd sends their signals as Kill calls).
   */
  feedStdin(stdin: NodeJS.ReadableStream): void {
    relayStdin(this.#p, stdin, this.#log);
  }

  /** Tells the guest the process's terminal has `rows` x `columns`. */
  resize(rows: number, columns: number): void {
    const { agent, id, execId } = this.#p;
    agent.ttyWinResize(id, rows, columns, execId).catch((err: unknown) => {
      this.#log.debug({ err }, 'resize failed');
    });
  }

  /** Runs `undo` at close(): listeners the caller attached for this relay. */
  onClose(undo: () => void): void {
    this.#undo.push(undo);
  }

  /**
   * Waits for the process to end, then for its output: all of it, or at
   * most `drainMs` when given (a shim must not hang on a stream the VM
   * never ends).
   */
  async wait(drainMs?: number): Promise<WaitProcessResponse> {
    const exit = await this.#p.agent.waitProcess(this.#p.id, this.#p.execId);
    const drained = this.#outputs.catch(() => undefined);
    await (drainMs === undefined
      ? drained
      : Promise.race([drained, new Promise((resolve) => setTimeout(resolve, drainMs).unref())]));
    return exit;
  }

  /** Stops forwarding signals and whatever onClose() registered. */
  close(): void {
    for (const undo of this.#undo.splice(0).reverse()) undo();
  }
}

/**
 * Copies a process's stdout or stderr to `sink` until the process closes
 * it. Once the sink is broken (EPIPE) the rest is read and dropped, so the
 * guest process is never blocked on a pipe nobody reads.
 */
async function pumpOutput(
  p: ProcessRef,
  which: 'stdout' | 'stderr',
  sink: NodeJS.WritableStream,
  onBrokenPipe: () => void,
): Promise<void> {
  const sinkState: { broken: boolean; failed?: () => void } = { broken: false };
  const onError = (err: Error): void => {
    if (!isBrokenPipe(err)) return;
    sinkState.broken = true;
    onBrokenPipe();
    sinkState.failed?.();
  };
  sink.on('error', onError);
  try {
    for await (const chunk of p.agent.readOutput(which, p.id, p.execId)) {
      if (sinkState.broken) continue;
      if (!sink.write(chunk)) {
        await new Promise<void>((resolve) => {
          sinkState.failed = resolve;
          sink.once('drain', resolve);
        });
        delete sinkState.failed;
      }
    }
  } finally {
    sink.off('error', onError);
  }
}

/** Feeds `source` to the process's stdin, in order, and closes it at EOF. */
function relayStdin(p: ProcessRef, source: NodeJS.ReadableStream, log: Logger): void {
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
function forwardSignals(p: ProcessRef, log: Logger): () => void {
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
