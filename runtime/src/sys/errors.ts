import type { ServiceError, status } from '@grpc/grpc-js';

/**
 * The runtime's one error type: a failure the user caused or can act on.
 * The CLI prints its message the way runc prints its errors and exits with
 * `exitCode`. `cause` keeps what it came from; `grpcCode` is the agent's
 * status when the agent refused or could not be reached, so a caller can
 * tell NOT_FOUND from INVALID_ARGUMENT from UNAVAILABLE (the VM is gone).
 */
export class RuntimeError extends Error {
  override readonly name = 'RuntimeError';
  readonly grpcCode: status | undefined;
  constructor(
    message: string,
    readonly exitCode = 1,
    options?: { cause?: unknown; grpcCode?: status },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.grpcCode = options?.grpcCode;
  }

  /**
   * A failed agent call: the agent's own words when it gave some (its
   * refusals name the field, as runc's do), else grpc-js's message.
   */
  static fromGrpc(err: unknown): RuntimeError {
    if (err instanceof RuntimeError) return err;
    const e = err as Partial<ServiceError>;
    const message = typeof e.details === 'string' && e.details !== '' ? e.details : messageOf(err);
    return new RuntimeError(message, 1, {
      cause: err,
      ...(typeof e.code === 'number' ? { grpcCode: e.code } : {}),
    });
  }
}

export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
