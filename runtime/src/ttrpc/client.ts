import { connect, type Socket } from 'node:net';
import { Request, Response, type KeyValue } from '../../../proto/generated/ttrpc.js';
import {
  encodeFrame,
  FrameDecoder,
  FrameTooLargeError,
  isOversized,
  MessageType,
} from './frame.js';
import { Code, TtrpcError } from './status.js';

interface Pending {
  resolve: (payload: Buffer) => void;
  reject: (err: Error) => void;
  timer?: NodeJS.Timeout;
}

/**
 * A ttrpc client on one unix-socket connection: unary calls, each on its own
 * odd stream id (PROTOCOL.md: client-initiated streams are odd), answered by
 * one Response frame. A call fails with a TtrpcError carrying the server's
 * status; UNAVAILABLE when the connection ends first.
 */
export class TtrpcClient {
  readonly #socket: Socket;
  readonly #pending = new Map<number, Pending>();
  #nextStream = 1;
  #closed: Error | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      for (const f of decoder.push(chunk)) {
        const p = this.#pending.get(f.streamId);
        if (p === undefined || f.type !== MessageType.Response) continue;
        this.#settle(f.streamId);
        if (isOversized(f)) {
          p.reject(
            new TtrpcError(Code.ResourceExhausted, new FrameTooLargeError(f.oversized).message),
          );
          continue;
        }
        let res: Response;
        try {
          res = Response.decode(f.data);
        } catch (err) {
          p.reject(new TtrpcError(Code.Internal, `ttrpc: malformed response: ${String(err)}`));
          continue;
        }
        if (res.status !== undefined && res.status.code !== Code.OK) {
          p.reject(TtrpcError.fromStatus(res.status));
        } else {
          p.resolve(res.payload);
        }
      }
    });
    socket.on('error', (err) => {
      this.#fail(err);
    });
    socket.on('close', () => {
      this.#fail(new Error('connection closed'));
    });
  }

  static connect(path: string): Promise<TtrpcClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new TtrpcClient(socket));
      });
    });
  }

  /**
   * Calls `service`/`method` with an encoded request; resolves to the encoded
   * response. `timeoutMs` goes to the server as timeout_nano too.
   */
  call(
    service: string,
    method: string,
    payload: Uint8Array,
    opts: { timeoutMs?: number; metadata?: KeyValue[] } = {},
  ): Promise<Buffer> {
    if (this.#closed !== undefined) {
      return Promise.reject(new TtrpcError(Code.Unavailable, `ttrpc: ${this.#closed.message}`));
    }
    const streamId = this.#nextStream;
    this.#nextStream = (this.#nextStream + 2) >>> 0;
    const data = Buffer.from(
      Request.encode({
        service,
        method,
        payload: Buffer.from(payload),
        timeoutNano: BigInt(opts.timeoutMs ?? 0) * 1_000_000n,
        metadata: opts.metadata ?? [],
      }).finish(),
    );
    let frame: Buffer;
    try {
      frame = encodeFrame({ streamId, type: MessageType.Request, flags: 0, data });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      return Promise.reject(new TtrpcError(Code.ResourceExhausted, message));
    }
    return new Promise((resolve, reject) => {
      const p: Pending = { resolve, reject };
      if (opts.timeoutMs !== undefined) {
        p.timer = setTimeout(() => {
          this.#settle(streamId);
          reject(new TtrpcError(Code.DeadlineExceeded, `${service}/${method}: deadline exceeded`));
        }, opts.timeoutMs);
      }
      this.#pending.set(streamId, p);
      this.#socket.write(frame);
    });
  }

  close(): void {
    this.#socket.destroy();
  }

  #settle(streamId: number): void {
    const p = this.#pending.get(streamId);
    if (p?.timer !== undefined) clearTimeout(p.timer);
    this.#pending.delete(streamId);
  }

  #fail(err: Error): void {
    this.#closed ??= err;
    for (const [id, p] of [...this.#pending]) {
      this.#settle(id);
      p.reject(new TtrpcError(Code.Unavailable, `ttrpc: ${err.message}`));
    }
  }
}
