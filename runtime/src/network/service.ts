import { status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Interfaces } from '../../../proto/generated/agent.js';
import type { SandboxServiceServer, SyncNetworkRequest } from '../../../proto/generated/sandbox.js';
import { messageOf } from '../errors.js';
import type { SandboxNetwork } from './sandbox-network.js';

/** The sandbox process's own service (proto/sandbox.proto). */
export function sandboxService(network: SandboxNetwork, log: Logger): SandboxServiceServer {
  return {
    syncNetwork(
      call: ServerUnaryCall<SyncNetworkRequest, Interfaces>,
      callback: sendUnaryData<Interfaces>,
    ) {
      network.sync(call.request.containerId).then(
        (interfaces) => {
          callback(null, { interfaces });
        },
        (err: unknown) => {
          log.warn({ err }, 'SyncNetwork failed');
          const code = (err as { code?: unknown }).code;
          callback({
            code: typeof code === 'number' ? code : status.INTERNAL,
            details: messageOf(err),
          });
        },
      );
    },
  };
}
