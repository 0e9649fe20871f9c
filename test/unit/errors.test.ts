// The runtime's one error type keeps what the agent said and its gRPC code.
import { status, type ServiceError } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { agentCall } from '../../runtime/src/sandbox/agent-client.js';
import { RuntimeError } from '../../runtime/src/sys/errors.js';

function grpcError(code: status, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), {
    code,
    details,
    metadata: undefined as unknown as ServiceError['metadata'],
  });
}

describe('RuntimeError', () => {
  it.each([
    [status.NOT_FOUND, 'container c1 does not exist'],
    [status.INVALID_ARGUMENT, 'linux.resources.pids.limit: must be an integer, got "x"'],
    [status.UNAVAILABLE, ''],
  ])('agentCall keeps gRPC code %i with the agent words %j', async (code, details) => {
    const cause = grpcError(code, details);
    const err = await agentCall(Promise.reject(cause)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).grpcCode).toBe(code);
    expect((err as RuntimeError).cause).toBe(cause);
    expect((err as RuntimeError).message).toBe(details === '' ? cause.message : details);
    expect((err as RuntimeError).exitCode).toBe(1);
  });

  it('has no gRPC code when it did not come from the agent', () => {
    expect(new RuntimeError('container does not exist').grpcCode).toBeUndefined();
  });
});
