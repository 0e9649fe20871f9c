import { status as GrpcStatus } from '@grpc/grpc-js';
import { SpecError } from '../../oci/validate/index.js';

/** Why a request failed, in the words of gRPC's status codes. */
export type AgentErrorKind =
  | 'invalid-argument'
  | 'not-found'
  | 'already-exists'
  | 'failed-precondition'
  | 'resource-exhausted'
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
export const resourceExhausted = (message: string): AgentError =>
  new AgentError('resource-exhausted', message);
export const unimplemented = (message: string): AgentError =>
  new AgentError('unimplemented', message);

const STATUS: Record<AgentErrorKind, GrpcStatus> = {
  'invalid-argument': GrpcStatus.INVALID_ARGUMENT,
  'not-found': GrpcStatus.NOT_FOUND,
  'already-exists': GrpcStatus.ALREADY_EXISTS,
  'failed-precondition': GrpcStatus.FAILED_PRECONDITION,
  'resource-exhausted': GrpcStatus.RESOURCE_EXHAUSTED,
  unimplemented: GrpcStatus.UNIMPLEMENTED,
  internal: GrpcStatus.INTERNAL,
};

export interface GrpcErrorStatus {
  code: GrpcStatus;
  details: string;
}

/**
 * The one table from errors to gRPC statuses. Requests are checked field by
 * field before use, so anything but an AgentError is the guest failing, not
 * the host asking wrongly: INTERNAL, with what failed. A JavaScript
 * TypeError or RangeError here is a bug of the agent (a value that passed
 * the checks and still broke it); its text is kept for the host's log but
 * marked as such, so it is never mistaken for a refusal.
 */
export function toGrpcStatus(err: unknown): GrpcErrorStatus {
  if (err instanceof AgentError) return { code: STATUS[err.kind], details: bounded(err.message) };
  if (err instanceof SpecError) {
    return { code: GrpcStatus.INVALID_ARGUMENT, details: bounded(err.message) };
  }
  if (err instanceof TypeError || err instanceof RangeError || err instanceof SyntaxError) {
    return {
      code: GrpcStatus.INTERNAL,
      details: bounded(`agent bug: ${err.name}: ${err.message}`),
    };
  }
  // NativeError (libkapsel's errno and syscall), Node's system errors (code,
  // syscall, path) and the rest: their message already names the step.
  const message = err instanceof Error ? err.message : String(err);
  return { code: GrpcStatus.INTERNAL, details: bounded(message) };
}

/**
 * The details travel in the grpc-message trailer; a message quoting a
 * megabyte the host sent would exceed the host's header list limit and the
 * call would end in a protocol error instead of the refusal.
 */
export const MAX_DETAILS = 2048;

function bounded(message: string): string {
  if (message.length <= MAX_DETAILS) return message;
  return `${message.slice(0, MAX_DETAILS)}... (${message.length - MAX_DETAILS} more characters)`;
}

/**
 * While a JSON document of the request (oci_spec_json, process_json) is
 * turned into a spawn request, a TypeError or RangeError means a value of
 * the wrong type or range in it that no check caught: the host's mistake,
 * refused as INVALID_ARGUMENT naming the document, not the agent's.
 */
export function asJsonRefusal(field: string, err: unknown): unknown {
  // The native layer wraps what its request encoder threw (a string where a
  // number goes, a NUL byte, a number beyond u32) with the encoder's error
  // as the cause.
  const wrongValue = (e: unknown): boolean => e instanceof TypeError || e instanceof RangeError;
  if (wrongValue(err) || (err instanceof Error && wrongValue(err.cause))) {
    return invalidArgument(
      `${field}: a value of the wrong type or range (${(err as Error).message})`,
    );
  }
  return err;
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
