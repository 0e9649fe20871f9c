import { status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Interfaces } from '../../../../proto/generated/agent.js';
import type {
  SandboxServiceServer,
  SyncNetworkRequest,
} from '../../../../proto/generated/sandbox.js';
import { messageOf } from '../../sys/errors.js';
import type { SandboxDns } from './dns-relay.js';
import type { SandboxNetwork } from './sandbox-network.js';

/** The sandbox process's own service (proto/sandbox.proto). */
export function sandboxService(
  network: SandboxNetwork,
  dns: SandboxDns,
  log: Logger,
): SandboxServiceServer {
  return {
    syncNetwork(
      call: ServerUnaryCall<SyncNetworkRequest, Interfaces>,
      callback: sendUnaryData<Interfaces>,
    ) {
      const { containerId, dnsRelayAddress } = call.request;
      network
        .sync(containerId)
        .then(async (interfaces) => {
          if (dnsRelayAddress !== '') await dns.enable(containerId, dnsRelayAddress);
          await network.watch(containerId);
          return interfaces;
        })
        .then(
          (interfaces) => {
            callback(null, { interfaces });
          },
          (err: unknown) => {
            log.warn({ err }, 'SyncNetwork failed');
            // The agent's refusal keeps its code; our own failures are INTERNAL.
            const e = err as { code?: unknown; details?: unknown };
            const code = Object.values(status).find((s) => s === e.code) ?? status.INTERNAL;
            callback({
              code: code as status,
              details:
                typeof e.details === 'string' && e.details !== '' ? e.details : messageOf(err),
            });
          },
        );
    },
  };
}
