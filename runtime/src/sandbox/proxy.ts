import {
  type ChannelInterface,
  Client,
  credentials,
  type MethodDefinition,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type ServiceError,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { AgentServiceService } from '../../../proto/generated/agent.js';

const identity = (b: Buffer): Buffer => b;

/** What the monitor learns from the calls it forwards. */
export interface ProxyObserver {
  /** A forwarded call finished; `err` is null when the agent said OK. */
  onDone(method: string, request: Buffer, err: ServiceError | null): void;
  /**
   * The caller of a unary call went away before the answer (its process
   * died: the connection closed). For WaitProcess that caller was the host
   * process standing for the guest one, its shim.
   */
  onAbandoned?(method: string, request: Buffer): void;
}

/**
 * The AgentService with every message left as bytes: the monitor serves this
 * on its unix socket and forwards each call, unchanged, over its single
 * connection to the guest agent. One generic loop over the service
 * definition, so a method added to the proto is forwarded without code here.
 */
export function proxyService(
  upstream: Client,
  observer: ProxyObserver,
): { definition: ServiceDefinition; implementation: UntypedServiceImplementation } {
  const definition: Record<string, MethodDefinition<Buffer, Buffer>> = {};
  const implementation: UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(AgentServiceService)) {
    const raw: MethodDefinition<Buffer, Buffer> = {
      path: method.path,
      requestStream: method.requestStream,
      responseStream: method.responseStream,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    };
    definition[name] = raw;
    // The contract has no client-streaming method; a new one needs a handler here.
    if (method.requestStream as boolean) {
      throw new Error(`${method.path}: client streaming is not proxied`);
    }
    implementation[name] = method.responseStream
      ? (call: ServerWritableStream<Buffer, Buffer>) => {
          const up = upstream.makeServerStreamRequest(
            method.path,
            identity,
            identity,
            call.request,
          );
          up.on('data', (chunk: Buffer) => {
            // HTTP/2 flow control on our side: stop reading the guest while
            // the caller is slow.
            if (!call.write(chunk)) {
              up.pause();
              call.once('drain', () => up.resume());
            }
          });
          up.on('end', () => {
            observer.onDone(name, call.request, null);
            call.end();
          });
          up.on('error', (err: ServiceError) => {
            observer.onDone(name, call.request, err);
            call.destroy(err);
          });
          call.on('cancelled', () => {
            up.cancel();
          });
        }
      : (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
          const deadline = call.getDeadline();
          let answered = false;
          const up = upstream.makeUnaryRequest(
            method.path,
            identity,
            identity,
            call.request,
            deadline === Infinity ? {} : { deadline },
            (err: ServiceError | null, res?: Buffer) => {
              answered = true;
              observer.onDone(name, call.request, err);
              if (err) callback(err);
              else callback(null, res);
            },
          );
          call.on('cancelled', () => {
            if (answered) return;
            up.cancel();
            observer.onAbandoned?.(name, call.request);
          });
        };
  }
  return { definition, implementation };
}

/**
 * A byte-level client on an existing channel: QEMU's chardev takes one
 * connection, so the proxy shares the sandbox's.
 */
export function upstreamClient(channel: ChannelInterface): Client {
  return new Client('unused', credentials.createInsecure(), { channelOverride: channel });
}
