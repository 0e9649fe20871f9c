// What the agent's bundles get for `@grpc/grpc-js` (scripts/bundle.mjs
// points the import here): the server half only. grpc-js's index loads the
// client side too (channel, subchannel pool, transport, load balancers, DNS
// resolver, admin), which the agent never uses; evaluating it was ~40% of
// grpc-js's share of the agent's start (docs/light-sandboxes.md). Source
// code keeps importing `@grpc/grpc-js`, so types and tests are unchanged.
import { Server } from '@grpc/grpc-js/build/src/server.js';
import { ServerCredentials } from '@grpc/grpc-js/build/src/server-credentials.js';
import { Status } from '@grpc/grpc-js/build/src/constants.js';
import { Metadata } from '@grpc/grpc-js/build/src/metadata.js';

export { Server, ServerCredentials, Status as status, Metadata };

/**
 * The generated code (proto/generated/agent.ts) makes a client class at load
 * time; in the agent it is never constructed.
 */
export class Client {
  constructor() {
    throw new Error('the agent has no gRPC client (agent/src/grpc/server-only.ts)');
  }

  close(): void {
    // never reached: no Client is ever made
  }
}

export function makeGenericClientConstructor(): typeof Client {
  return Client;
}
