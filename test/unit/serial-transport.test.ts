// The virtio-serial transport against a bad host: the port is stood in for
// by a device that behaves as the guest sees /dev/vport0p1 (reads return 0
// while no host is connected, then the connected host's bytes), fed from a
// unix socket the "host" connects to. A real grpc-js server serves the
// connections the transport makes; a host that sends garbage, or breaks
// HTTP/2 after its preface, must not keep the next host from being served.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Server, ServerCredentials, type sendUnaryData } from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AgentServiceClient,
  AgentServiceService,
  CheckResponse_ServingStatus,
  type CheckResponse,
} from '../../proto/generated/agent.js';
import { SerialPortConnections, type PortDevice } from '../../agent/src/transport/serial.js';

/** The port as the guest sees it, with the host end on a unix socket. */
class SocketBackedPort implements PortDevice {
  private host: Socket | undefined;
  /** The hosts' bytes in order, 'hang-up' where one went away. */
  private queue: (Buffer | 'hang-up')[] = [];
  private wake: (() => void) | undefined;

  attach(host: Socket): void {
    this.host = host;
    host.on('data', (d: Buffer) => {
      this.queue.push(d);
      this.wake?.();
    });
    host.on('close', () => {
      if (this.host === host) this.host = undefined;
      this.queue.push('hang-up');
      this.wake?.();
    });
    host.on('error', () => undefined);
  }

  async read(buffer: Buffer, offset: number, length: number): Promise<{ bytesRead: number }> {
    for (;;) {
      const chunk = this.queue.shift();
      // A host that went: 0, as virtio_console reads then (and while none is there).
      if (chunk === 'hang-up') return { bytesRead: 0 };
      if (chunk !== undefined) {
        const n = Math.min(length, chunk.length);
        chunk.copy(buffer, offset, 0, n);
        if (n < chunk.length) this.queue.unshift(chunk.subarray(n));
        return { bytesRead: n };
      }
      if (this.host === undefined) return { bytesRead: 0 };
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  write(buffer: Buffer, offset: number, length: number): Promise<{ bytesWritten: number }> {
    // Writes while no host is there are lost, as on the device.
    this.host?.write(buffer.subarray(offset, offset + length));
    return Promise.resolve({ bytesWritten: length });
  }

  // Reads and writes never say EAGAIN here: nothing to wait for.
  wait(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

describe('virtio-serial transport', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kapsel-serial-'));
  const path = join(dir, 'port.sock');
  const port = new SocketBackedPort();
  const grpc = new Server();
  let relay: NetServer;
  let transport: SerialPortConnections;
  let connections = 0;

  beforeAll(async () => {
    grpc.addService(AgentServiceService, {
      check: (_call: unknown, cb: sendUnaryData<CheckResponse>) => {
        cb(null, { status: CheckResponse_ServingStatus.SERVING });
      },
    });
    const injector = grpc.createConnectionInjector(ServerCredentials.createInsecure());
    transport = SerialPortConnections.onDevice(
      port,
      (conn) => {
        connections++;
        injector.injectConnection(conn);
      },
      pino({ level: 'silent' }),
    );
    // QEMU's chardev takes one host connection at a time.
    relay = createServer((host) => {
      port.attach(host);
    });
    await new Promise<void>((resolve) => relay.listen(path, resolve));
  });

  afterAll(async () => {
    await transport.close();
    relay.close();
    grpc.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A host that sends `bytes`, then hangs up. */
  async function badHost(bytes: Buffer): Promise<void> {
    const s = connect(path);
    await new Promise<void>((resolve) => s.once('connect', resolve));
    s.write(bytes);
    // Until the transport has read it all (the relay queue is empty).
    await new Promise((resolve) => setTimeout(resolve, 200));
    s.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  async function goodHostChecks(): Promise<CheckResponse_ServingStatus> {
    const client = new AgentServiceClient(`unix://${path}`, credentials.createInsecure());
    try {
      return await new Promise((resolve, reject) => {
        client.check({}, (err, res) => {
          if (err) reject(err);
          else resolve(res.status);
        });
      });
    } finally {
      client.close();
    }
  }

  it('serves a host', async () => {
    expect(await goodHostChecks()).toBe(CheckResponse_ServingStatus.SERVING);
    expect(connections).toBe(1);
  });

  it('makes no connection for a host that sends garbage, and serves the next one', async () => {
    const before = connections;
    await badHost(Buffer.from('GET / HTTP/1.1\r\nHost: agent\r\n\r\n'.repeat(100)));
    expect(connections).toBe(before);
    expect(await goodHostChecks()).toBe(CheckResponse_ServingStatus.SERVING);
  });

  it('starts afresh at a preface that follows garbage on the same host connection', async () => {
    // A host that reconnected faster than the guest saw it go looks like this.
    const s = connect(path);
    await new Promise<void>((resolve) => s.once('connect', resolve));
    let received = 0;
    s.on('data', (d: Buffer) => (received += d.length));
    s.write(Buffer.from('garbage that is not HTTP/2 at all'));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const before = received;
    const emptySettings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    s.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), emptySettings]));
    await new Promise((resolve) => setTimeout(resolve, 300));
    // The server's SETTINGS (and its ACK of ours) came back: a session runs.
    expect(received).toBeGreaterThan(before);
    s.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await goodHostChecks()).toBe(CheckResponse_ServingStatus.SERVING);
  });

  it('drops a host whose frames after the preface are garbage, and serves the next one', async () => {
    await badHost(
      Buffer.concat([
        Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
        Buffer.alloc(4096, 0xff),
        Buffer.from('more garbage after the session ended'),
      ]),
    );
    expect(await goodHostChecks()).toBe(CheckResponse_ServingStatus.SERVING);
  });
});
