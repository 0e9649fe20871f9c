import type { ServiceDefinition } from '@grpc/grpc-js';
import { invalidArgument, type AgentError } from './errors.js';

const UNDECODABLE = Symbol('undecodable request');

interface Undecodable {
  [UNDECODABLE]: string;
}

/**
 * The service definition with request decoders that do not throw. grpc-js
 * answers a request it cannot decode with INTERNAL ("Error deserializing
 * request"), as if the agent had failed; the host sent bytes that are not
 * the message, which is INVALID_ARGUMENT. So a decoding error becomes a
 * marker value the handler refuses (undecodable()).
 */
export function withDecodeGuard<S extends ServiceDefinition>(service: S): S {
  const guarded: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(service)) {
    guarded[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          return method.requestDeserialize(bytes);
        } catch (err) {
          return { [UNDECODABLE]: err instanceof Error ? err.message : String(err) };
        }
      },
    };
  }
  return guarded as S;
}

export function isUndecodable(request: unknown): request is Undecodable {
  return typeof request === 'object' && request !== null && UNDECODABLE in request;
}

export function undecodable(request: Undecodable): AgentError {
  return invalidArgument(`request: not a valid protobuf message: ${request[UNDECODABLE]}`);
}
