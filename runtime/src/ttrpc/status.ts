import type { Status } from '../../../proto/generated/ttrpc.js';

/**
 * gRPC status codes (google/rpc/code.proto), which ttrpc carries in every
 * Response. containerd maps them to its errdefs (errdefs/grpc.go): NotFound
 * is ErrNotFound, Unimplemented ErrNotImplemented, FailedPrecondition
 * ErrFailedPrecondition, and so on.
 */
export const Code = {
  OK: 0,
  Cancelled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
} as const;

/** A call's failure with its status: thrown by handlers, rejected to callers. */
export class TtrpcError extends Error {
  override readonly name = 'TtrpcError';
  constructor(
    readonly code: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  toStatus(): Status {
    return { code: this.code, message: this.message, details: [] };
  }

  static fromStatus(s: Status): TtrpcError {
    return new TtrpcError(s.code, s.message);
  }
}
