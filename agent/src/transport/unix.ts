import { createServer, type Server, type Socket } from 'node:net';
import { unlink } from 'node:fs/promises';
import type { Logger } from 'pino';
import { judgePreface, PREFACE_TIMEOUT_MS } from './preface.js';

/**
 * Standalone mode: the agent serves on a unix socket on the host, so the
 * engine and every RPC can be tested as root without a VM. Connections are
 * injected into grpc-js the same way as the virtio-serial ones, once they
 * have sent the HTTP/2 preface; the others are closed.
 */
export async function listenUnix(
  path: string,
  onConnection: (conn: Socket) => void,
  log: Logger,
): Promise<Server> {
  await unlink(path).catch(() => undefined);
  const server = createServer((conn) => {
    awaitPreface(conn, log, onConnection);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

/**
 * Reads the first bytes of a connection; hands it on with them put back
 * (Node's HTTP/2 session takes the bytes a socket has buffered) once they
 * are the preface, and closes it when they are not or do not come in time.
 */
function awaitPreface(conn: Socket, log: Logger, onConnection: (conn: Socket) => void): void {
  let head = Buffer.alloc(0);
  const refuse = (why: string): void => {
    cleanup();
    log.warn({ why }, 'connection refused: not an HTTP/2 client');
    conn.destroy();
  };
  const timer = setTimeout(() => {
    refuse(`no HTTP/2 preface within ${PREFACE_TIMEOUT_MS} ms`);
  }, PREFACE_TIMEOUT_MS);
  const onData = (chunk: Buffer): void => {
    head = Buffer.concat([head, chunk]);
    const verdict = judgePreface(head);
    if (verdict === 'garbage') {
      refuse(`first bytes ${JSON.stringify(head.subarray(0, 24).toString('latin1'))}`);
    } else if (verdict === 'http2') {
      cleanup();
      conn.pause();
      conn.unshift(head);
      onConnection(conn);
    }
  };
  const onClose = (): void => {
    cleanup();
  };
  const cleanup = (): void => {
    clearTimeout(timer);
    conn.off('data', onData);
    conn.off('close', onClose);
  };
  conn.on('error', () => undefined);
  conn.on('data', onData);
  conn.on('close', onClose);
}
