import { status } from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../runtime/src/sandbox/agent-client.js';

// Issue 11: what a host connection gets first may be bytes meant for an
// earlier one (a guest agent's reply written after that host hung up: a
// GOAWAY, frames of old streams) or plain garbage. The host's agent client
// must refuse such a connection at once with UNAVAILABLE, not wait for its
// call's deadline. Here the "agent" is a unix socket that answers so.

function goaway(): Buffer {
  const f = Buffer.alloc(9 + 8);
  f.writeUIntBE(8, 0, 3);
  f[3] = 7; // GOAWAY on stream 0: last stream 0, NO_ERROR
  return f;
}

describe('the agent client given a connection that is not a fresh HTTP/2 session', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kapsel-garbage-'));
  const servers: Server[] = [];
  afterAll(() => {
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    ['bytes that are not HTTP/2', Buffer.from('not http/2 at all\n')],
    ['a stale GOAWAY before SETTINGS', goaway()],
  ])('refuses %s with UNAVAILABLE before its deadline', async (name, first) => {
    const path = join(dir, `${String(servers.length)}.sock`);
    const server = createServer((s) => {
      s.on('error', () => undefined);
      s.write(first);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(path, resolve));
    const client = AgentClient.forSocket(path);
    try {
      // A deadline far beyond the test's own timeout: only a prompt refusal passes.
      const err = await client.check(600_000).then(
        () => undefined,
        (e: unknown) => e as { code?: number; details?: string },
      );
      expect(err?.code, name).toBe(status.UNAVAILABLE);
      expect(err?.details).toContain('Protocol error');
    } finally {
      client.close();
    }
  });
});
