import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import type { Interface, Interfaces } from '../../../../proto/generated/agent.js';
import { SandboxServiceClient } from '../../../../proto/generated/sandbox.js';
import { RuntimeError } from '../../sys/errors.js';

/**
 * Asks a sandbox process (on `socket`) to mirror its host network namespace
 * into the guest, and to relay `dnsRelayAddress`:53 there (network/dns-relay.ts;
 * "" for none). Fails with the sandbox's own words.
 */
export async function syncNetwork(
  socket: string,
  containerId: string,
  dnsRelayAddress = '',
): Promise<Interface[]> {
  const client = new SandboxServiceClient(`unix://${socket}`, credentials.createInsecure());
  try {
    const res = await new Promise<Interfaces>((resolve, reject) => {
      client.syncNetwork(
        { containerId, dnsRelayAddress },
        new Metadata(),
        { deadline: Date.now() + 120_000 },
        (err: ServiceError | null, r: Interfaces) => {
          if (err) reject(err);
          else resolve(r);
        },
      );
    });
    return res.interfaces;
  } catch (err) {
    const details = (err as Partial<ServiceError>).details;
    throw new RuntimeError(`configure the sandbox's network: ${details ?? String(err)}`, 1, {
      cause: err,
    });
  } finally {
    client.close();
  }
}
