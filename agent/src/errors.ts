import { status as GrpcStatus } from '@grpc/grpc-js';
import { SpecError } from '../../oci/validate/index.js';

/** Why a request failed, in the words of gRPC's status codes. */
export type AgentErrorKind =
  | 'invalid-argument'
  | 'not-found'
  | 'already-exists'
  | 'failed-precondition'
  | 'unimplemented'
  | 'internal';

/**
 * Every error the agent hands back to the host is an AgentError, so each one
 * maps to a status code; grpc-js would turn anything else into UNKNOWN.
 */
export class AgentError extends Error {
  override readonly name = 'AgentError';
  constructor(
    readonly kind: AgentErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const invalidArgument = (message: string): AgentError =>
  new AgentError('invalid-argument', message);
export const notFound = (message: string): AgentError => new AgentError('not-found', message);
export const alreadyExists = (message: string): AgentError =>
  new AgentError('already-exists', message);
export const failedPrecondition = (message: string): AgentError =>
  new AgentError('failed-precondition', message);
export const unimplemented = (message: string): AgentError =>
  new AgentError('unimplemented', message);

const STATUS: Record<AgentErrorKind, GrpcStatus> = {
  'invalid-argument': GrpcStatus.INVALID_ARGUMENT,
  'not-found': GrpcStatus.NOT_FOUND,
  'already-exists': GrpcStatus.ALREADY_EXISTS,
  'failed-precondition': GrpcStatus.FAILED_PRECONDITION,
  unimplemented: GrpcStatus.UNIMPLEMENTED,
  internal: GrpcStatus.INTERNAL,
};

export interface GrpcErrorStatus {
  code: GrpcStatus;
  details: string;
}

/** The one table from agent errors to gRPC statuses. */
export function toGrpcStatus(err: unknown): GrpcErrorStatus {
  if (err instanceof AgentError) return { code: STATUS[err.kind], details: err.message };
  if (err instanceof SpecError) return { code: GrpcStatus.INVALID_ARGUMENT, details: err.message };
  const message = err instanceof Error ? err.message : String(err);
  return { code: GrpcStatus.INTERNAL, details: message };
}

/**
 * Runs a check of the shared validator (oci/validate), turning its SpecError
 * into the agent's invalid-argument with the same message.
 */
export function specErrors<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (err instanceof SpecError)
      throw new AgentError('invalid-argument', err.message, { cause: err });
    throw err;
  }
}
