import { createServer, type Server, type Socket } from 'node:net';
import { rm } from 'node:fs/promises';
import { Request, Response, type KeyValue } from '../../../proto/generated/ttrpc.js';
import {
  encodeFrame,
  Flags,
  FrameDecoder,
  FrameTooLargeError,
  isOversized,
  MessageType,
  type Frame,
} from './frame.js';
import { Code, TtrpcError } from './status.js';

/** What a handler learns about its call besides the message. */
export interface CallContext {
  metadata: KeyValue[];
  /** Unix ms by which the caller gives up (its timeout_nano), if it set one. */
  deadline?: number;
}

/** A unary method: the request's bytes in, the response's bytes out; throw TtrpcError to fail. */
export type UnaryHandler = (payload: Buffer, ctx: CallContext) => Promise<Uint8Array>;

/** The shape of a ts-proto generic service definition, as far as dispatch needs it. */
export interface ServiceDefinition {
  fullName: string;
  methods: Record<
    string,
    {
      name: string;
      requestType: { decode(input: Uint8Array): unknown };
      responseType: { encode(message: never): { finish(): Uint8Array } };
    }
  >;
}

/** The handlers of a generic definition `D`, keyed as ts-proto keys its methods. */
export type ServiceImplementation<D extends ServiceDefinition> = {
  [K in keyof D['methods']]: (
    request: ReturnType<D['methods'][K]['requestType']['decode']>,
    ctx: CallContext,
  ) => Promise<Parameters<D['methods'][K]['responseType']['encode']>[0]>;
};

/**
 * A ttrpc server on a unix socket (github.com/containerd/ttrpc PROTOCOL.md):
 * unary requests only, which is all containerd's shim API uses. Requests on
 * one connection are served concurrently; each gets one Response frame on its
 * stream. Unknown services and methods get UNIMPLEMENTED, oversized requests
 * RESOURCE_EXHAUSTED, a handler's plain Error UNKNOWN, as ttrpc's Go server
 * answers them.
 */
export class TtrpcServer {
  readonly #services = new Map<string, Map<string, UnaryHandler>>();
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;

  /** Methods by their wire name (`State`), under the service's full name (`containerd.task.v2.Task`). */
  register(service: string, methods: Record<string, UnaryHandler>): void {
    this.#services.set(service, new Map(Object.entries(methods)));
  }

  /** Registers a ts-proto generic definition with typed handlers. */
  registerDefinition<D extends ServiceDefinition>(def: D, impl: ServiceImplementation<D>): void {
    const methods: Record<string, UnaryHandler> = {};
    for (const [key, m] of Object.entries(def.methods)) {
      const handler = impl[key as keyof D['methods']];
      methods[m.name] = async (payload, ctx) => {
        const req = m.requestType.decode(payload) as never;
        const res = await handler(req, ctx);
        return m.responseType.encode(res).finish();
      };
    }
    this.register(def.fullName, methods);
  }

  /** Listens on `path` (replacing a stale socket file) until close(). */
  async listen(path: string): Promise<void> {
    await rm(path, { force: true });
    const server = createServer((socket) => {
      this.#serve(socket);
    });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  /** Stops accepting and drops every connection. */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    if (server !== undefined)
      await new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
  }

  #serve(socket: Socket): void {
    this.#sockets.add(socket);
    const decoder = new FrameDecoder();
    const send = (streamId: number, res: Response): void => {
      let data = Buffer.from(Response.encode(res).finish());
      if (data.length > encodeLimit) {
        const e = new FrameTooLargeError(data.length);
        data = Buffer.from(
          Response.encode({
            status: new TtrpcError(Code.ResourceExhausted, e.message).toStatus(),
            payload: Buffer.alloc(0),
          }).finish(),
        );
      }
      if (!socket.destroyed) {
        socket.write(encodeFrame({ streamId, type: MessageType.Response, flags: 0, data }));
      }
    };
    socket.on('data', (chunk: Buffer) => {
      for (const f of decoder.push(chunk)) {
        if (isOversized(f)) {
          if (f.type === MessageType.Request) {
            send(f.streamId, failure(new FrameTooLargeError(f.oversized), Code.ResourceExhausted));
          }
          continue;
        }
        // Data on a stream we never opened (we serve unary calls only): dropped.
        if (f.type !== MessageType.Request) continue;
        void this.#dispatch(f).then((res) => {
          send(f.streamId, res);
        });
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.#sockets.delete(socket));
  }

  /** Called with each call's service, method and outcome (a status code), for tracing. */
  onCall: ((service: string, method: string, code: number, ms: number) => void) | undefined;

  async #dispatch(f: Frame): Promise<Response> {
    const t0 = Date.now();
    const res = await this.#answer(f);
    if (this.onCall !== undefined) {
      let name = ['?', '?'];
      try {
        const r = Request.decode(f.data);
        name = [r.service, r.method];
      } catch {
        // malformed: traced as ?/?
      }
      this.onCall(name[0] ?? '?', name[1] ?? '?', res.status?.code ?? 0, Date.now() - t0);
    }
    return res;
  }

  async #answer(f: Frame): Promise<Response> {
    try {
      if ((f.flags & Flags.RemoteOpen) !== 0) {
        throw new TtrpcError(Code.Unimplemented, 'streaming requests are not supported');
      }
      let req: Request;
      try {
        req = Request.decode(f.data);
      } catch (err) {
        throw new TtrpcError(Code.InvalidArgument, `ttrpc: malformed request: ${String(err)}`);
      }
      const service = this.#services.get(req.service);
      if (service === undefined) throw new TtrpcError(Code.Unimplemented, `service ${req.service}`);
      const handler = service.get(req.method);
      if (handler === undefined) throw new TtrpcError(Code.Unimplemented, `method ${req.method}`);
      const ctx: CallContext = { metadata: req.metadata };
      if (req.timeoutNano > 0n) ctx.deadline = Date.now() + Number(req.timeoutNano / 1_000_000n);
      const payload = await handler(req.payload, ctx);
      return { status: { code: Code.OK, message: '', details: [] }, payload: Buffer.from(payload) };
    } catch (err) {
      return failure(err, Code.Unknown);
    }
  }
}

/** Room for the Response envelope around a payload within one frame. */
const encodeLimit = 4 << 20;

function failure(err: unknown, fallback: number): Response {
  const status =
    err instanceof TtrpcError
      ? err.toStatus()
      : { code: fallback, message: err instanceof Error ? err.message : String(err), details: [] };
  return { status, payload: Buffer.alloc(0) };
}
