import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** An asynchronous event QEMU sent, e.g. VSERPORT_CHANGE, SHUTDOWN. */
export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

export interface QmpGreeting {
  QMP: {
    version: { qemu: { major: number; minor: number; micro: number }; package: string };
    capabilities: string[];
  };
}

/** The commands kapsel uses, with their arguments and return values. */
export interface QmpCommands {
  qmp_capabilities: { args: undefined; ret: Record<string, never> };
  cont: { args: undefined; ret: Record<string, never> };
  stop: { args: undefined; ret: Record<string, never> };
  quit: { args: undefined; ret: Record<string, never> };
  system_powerdown: { args: undefined; ret: Record<string, never> };
  'query-status': {
    args: undefined;
    ret: { status: string; running: boolean; singlestep?: boolean };
  };
  'query-kvm': { args: undefined; ret: { enabled: boolean; present: boolean } };
}

/** QEMU refused a command: `{"error": {"class": ..., "desc": ...}}`. */
export class QmpCommandError extends Error {
  override readonly name = 'QmpCommandError';
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`qmp ${command}: ${errorClass}: ${desc}`);
  }
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

interface QmpClientEvents {
  event: [QmpEvent];
  close: [];
}

/**
 * A client of QEMU's machine protocol on a unix socket: one JSON object a
 * line; the server greets, waits for `qmp_capabilities`, then answers each
 * `execute` in order and interleaves events.
 */
export class QmpClient extends EventEmitter<QmpClientEvents> {
  #socket: Socket;
  #buffer = '';
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #closed = false;
  #greeting: Promise<QmpGreeting>;

  private constructor(socket: Socket) {
    super();
    this.#socket = socket;
    let onGreeting: (g: QmpGreeting) => void = () => undefined;
    let onNoGreeting: (err: Error) => void = () => undefined;
    this.#greeting = new Promise<QmpGreeting>((resolve, reject) => {
      onGreeting = resolve;
      onNoGreeting = reject;
    });
    // Nobody may be waiting when the socket dies early; the rejection is
    // still reported to whoever awaits the greeting.
    this.#greeting.catch(() => undefined);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.#buffer += chunk;
      let nl: number;
      while ((nl = this.#buffer.indexOf('\n')) >= 0) {
        const line = this.#buffer.slice(0, nl).trim();
        this.#buffer = this.#buffer.slice(nl + 1);
        if (line !== '') this.#onMessage(line, onGreeting);
      }
    });
    socket.on('error', () => undefined); // 'close' follows and reports it
    socket.on('close', () => {
      this.#closed = true;
      onNoGreeting(new Error('qmp connection closed before the greeting'));
      for (const p of this.#pending.values()) {
        p.reject(new Error(`qmp ${p.command}: connection closed`));
      }
      this.#pending.clear();
      this.emit('close');
    });
  }

  /**
   * Connects to `path`, retrying while the socket does not exist yet or
   * refuses (QEMU creates it early in its startup), and negotiates
   * capabilities. `signal` ends the retries, e.g. when QEMU has exited.
   */
  static async connect(
    path: string,
    opts: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<QmpClient> {
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    for (;;) {
      opts.signal?.throwIfAborted();
      let socket: Socket;
      try {
        socket = await openSocket(path);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if ((code === 'ENOENT' || code === 'ECONNREFUSED') && Date.now() < deadline) {
          await sleep(10, undefined, opts.signal ? { signal: opts.signal } : {});
          continue;
        }
        throw new Error(`connect qmp ${path}: ${(err as Error).message}`, { cause: err });
      }
      const client = new QmpClient(socket);
      try {
        const left = AbortSignal.timeout(Math.max(1, deadline - Date.now()));
        await raceSignal(
          client.#greeting,
          opts.signal ? AbortSignal.any([opts.signal, left]) : left,
        );
        await client.execute('qmp_capabilities');
        return client;
      } catch (err) {
        client.close();
        throw err;
      }
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Runs a command and resolves with its `return` value. */
  execute<K extends keyof QmpCommands>(
    command: K,
    ...args: QmpCommands[K]['args'] extends undefined ? [] : [QmpCommands[K]['args']]
  ): Promise<QmpCommands[K]['ret']> {
    return this.executeRaw(command, args[0]) as Promise<QmpCommands[K]['ret']>;
  }

  /** Runs any command; for commands not (yet) typed in QmpCommands. */
  executeRaw(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.#closed) return Promise.reject(new Error(`qmp ${command}: connection closed`));
    const id = this.#nextId++;
    const msg: Record<string, unknown> = { execute: command, id };
    if (args !== undefined) msg['arguments'] = args;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { command, resolve, reject });
      this.#socket.write(`${JSON.stringify(msg)}\n`);
    });
  }

  /** Resolves with the next event that `match` accepts. */
  waitEvent(match: (e: QmpEvent) => boolean, signal?: AbortSignal): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        this.off('event', onEvent);
        this.off('close', onClose);
        signal?.removeEventListener('abort', onAbort);
      };
      const onEvent = (e: QmpEvent): void => {
        if (!match(e)) return;
        cleanup();
        resolve(e);
      };
      const onClose = (): void => {
        cleanup();
        reject(new Error('qmp connection closed while waiting for an event'));
      };
      const onAbort = (): void => {
        cleanup();
        reject(signal?.reason as Error);
      };
      if (signal?.aborted) {
        onAbort();
        return;
      }
      if (this.#closed) {
        onClose();
        return;
      }
      this.on('event', onEvent);
      this.on('close', onClose);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  close(): void {
    this.#socket.destroy();
  }

  #onMessage(line: string, onGreeting: (g: QmpGreeting) => void): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // not JSON: nothing QMP sends, ignore rather than die
    }
    if ('QMP' in msg) {
      onGreeting(msg as unknown as QmpGreeting);
    } else if (typeof msg['event'] === 'string') {
      this.emit('event', {
        event: msg['event'],
        data: (msg['data'] ?? {}) as Record<string, unknown>,
        timestamp: msg['timestamp'] as QmpEvent['timestamp'],
      });
    } else if ('return' in msg || 'error' in msg) {
      // Without oob, QEMU answers in order; an id-less answer (a parse error)
      // belongs to the oldest command.
      const id = typeof msg['id'] === 'number' ? msg['id'] : this.#pending.keys().next().value;
      if (id === undefined) return;
      const p = this.#pending.get(id);
      if (!p) return;
      this.#pending.delete(id);
      if ('error' in msg) {
        const e = msg['error'] as { class?: string; desc?: string };
        p.reject(new QmpCommandError(p.command, e.class ?? 'GenericError', e.desc ?? ''));
      } else {
        p.resolve(msg['return']);
      }
    }
  }
}

function openSocket(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

function raceSignal<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => {
      signal.removeEventListener('abort', onAbort);
    });
  });
}
