import { createServer, type Server, type Socket } from 'node:net';
import { unlink } from 'node:fs/promises';

/**
 * Standalone mode: the agent serves on a unix socket on the host, so the
 * engine and every RPC can be tested as root without a VM. Connections are
 * injected into grpc-js the same way as the virtio-serial ones.
 */
export async function listenUnix(
  path: string,
  onConnection: (conn: Socket) => void,
): Promise<Server> {
  await unlink(path).catch(() => undefined);
  const server = createServer(onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
