import { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { HTTP2_PREFACE, judgePreface, PREFACE_TIMEOUT_MS } from './preface.js';

const READ_SIZE = 64 * 1024;
/** How often to look again while no host is connected (reads return 0 then). */
const IDLE_POLL_MS = 20;
/**
 * The longest one wait for the device (PortDevice.wait) lasts before the
 * loop looks again whether it was closed or the connection ended.
 */
const WAIT_SLICE_MS = 1000;

/**
 * Turns a virtio-serial character device into one Duplex per host
 * connection.
 *
 * libuv cannot poll such a device (nodejs/node#9285), so reads are plain
 * blocking reads on the threadpool. While the host side is disconnected a read
 * returns 0 at once; after the host (re)connects, reads deliver the new
 * connection's bytes. So: 0 bytes ends the current connection, and the first
 * bytes after that start a new one. grpc-js then runs a fresh HTTP/2 session
 * on each.
 *
 * A write for a connection whose host hung up is dropped, never left to
 * reach the next host: the device is non-blocking (virtio-port.ts), and a
 * write the port cannot take yet waits in userspace, where the hang-up
 * ends it.
 *
 * A connection must start with the HTTP/2 preface. One that does not, that
 * sends an incomplete preface for PREFACE_TIMEOUT_MS, or that grpc-js closed
 * (a protocol error) is dropped: its bytes are discarded until the host
 * hangs up or a preface starts a new connection, so a bad host cannot wedge
 * the port for the next one.
 */
/**
 * What the port is read and written through (virtio-port.ts
 * openVirtioPort). read and write may reject with code EAGAIN (a
 * non-blocking device); `wait` then resolves once the direction may have
 * progress, the host hung up, or `timeoutMs` passed.
 */
export interface PortDevice {
  wait(direction: 'in' | 'out', timeoutMs: number): Promise<void>;
  read(
    buffer: Buffer,
    offset: number,
    length: number,
    position: null,
  ): Promise<{ bytesRead: number }>;
  write(
    buffer: Buffer,
    offset: number,
    length: number,
    position: null,
  ): Promise<{ bytesWritten: number }>;
  close(): Promise<void>;
}

export class SerialPortConnections {
  private current: PortConnection | undefined;
  private stopped = false;
  /** The first bytes of a connection not yet handed to grpc-js. */
  private head = Buffer.alloc(0);
  /** Set once the current connection was refused or closed by the agent. */
  private discarding = false;
  private prefaceTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly file: PortDevice,
    private readonly onConnection: (conn: Duplex) => void,
    private readonly log: Logger,
  ) {}

  /** Called each time the host side hangs up. */
  onHangUp: () => void = () => undefined;

  /** On an open device: virtio-port.ts openVirtioPort, or a test's stand-in. */
  static onDevice(
    file: PortDevice,
    onConnection: (conn: Duplex) => void,
    log: Logger,
  ): SerialPortConnections {
    const port = new SerialPortConnections(file, onConnection, log);
    void port.readLoop();
    return port;
  }

  async close(): Promise<void> {
    this.stopped = true;
    this.current?.hangUp();
    await this.file.close();
  }

  private isStopped(): boolean {
    return this.stopped;
  }

  private async readLoop(): Promise<void> {
    while (!this.stopped) {
      let n: number;
      const buf = Buffer.allocUnsafe(READ_SIZE);
      try {
        ({ bytesRead: n } = await this.file.read(buf, 0, READ_SIZE, null));
      } catch (err) {
        if (this.isStopped()) return;
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
          // A host is connected and has sent nothing yet.
          await this.file.wait('in', WAIT_SLICE_MS).catch(() => sleep(IDLE_POLL_MS));
          continue;
        }
        this.log.error({ err }, 'read from the agent port failed');
        await sleep(IDLE_POLL_MS);
        continue;
      }
      if (n === 0) {
        this.resetHead();
        this.discarding = false;
        if (this.current !== undefined) {
          this.log.info('host disconnected');
          this.current.hangUp();
          this.current = undefined;
          this.onHangUp();
        }
        await sleep(IDLE_POLL_MS);
        continue;
      }
      this.received(buf.subarray(0, n));
    }
  }

  private received(chunk: Buffer): void {
    if (this.current?.live === true) {
      this.current.deliver(chunk);
      return;
    }
    if (this.current !== undefined) {
      // grpc-js ended the session (a protocol error): whatever follows on
      // this connection has no session to go to.
      this.log.warn('connection closed by the agent; discarding until the host reconnects');
      this.current = undefined;
      this.discarding = true;
    }
    let head = Buffer.concat([this.head, chunk]);
    if (this.discarding) {
      const at = head.indexOf(HTTP2_PREFACE);
      if (at === -1) {
        // Keep a tail that may be the start of a preface split across reads.
        this.head = Buffer.from(head.subarray(Math.max(0, head.length - HTTP2_PREFACE.length + 1)));
        return;
      }
      head = head.subarray(at);
      this.discarding = false;
    }
    switch (judgePreface(head)) {
      case 'http2':
        this.resetHead();
        this.log.info('host connected');
        this.current = new PortConnection(this.file);
        this.onConnection(this.current);
        this.current.deliver(head);
        return;
      case 'incomplete':
        this.head = head;
        this.prefaceTimer ??= setTimeout(() => {
          this.log.warn(
            { ms: PREFACE_TIMEOUT_MS },
            'no complete HTTP/2 preface in time; discarding',
          );
          this.resetHead();
          this.discarding = true;
        }, PREFACE_TIMEOUT_MS);
        return;
      case 'garbage':
        this.log.warn(
          { first: head.subarray(0, 24).toString('latin1') },
          'host sent no HTTP/2 preface; discarding until it reconnects',
        );
        this.resetHead();
        this.discarding = true;
        // A preface later in the same bytes still starts a connection.
        this.received(head.subarray(1));
        return;
    }
  }

  private resetHead(): void {
    this.head = Buffer.alloc(0);
    clearTimeout(this.prefaceTimer);
    this.prefaceTimer = undefined;
  }
}

/** One host connection. Writes after its hang-up are dropped, not sent to the next host. */
class PortConnection extends Duplex {
  /** False once the host hung up or grpc-js destroyed the connection. */
  live = true;

  constructor(private readonly file: PortDevice) {
    super({ allowHalfOpen: false });
    this.once('close', () => {
      this.live = false;
    });
  }

  deliver(chunk: Buffer): void {
    if (this.live) this.push(chunk);
  }

  hangUp(): void {
    if (!this.live) return;
    this.live = false;
    this.push(null);
    this.destroy();
  }

  override _read(): void {
    // Data is pushed by the port's read loop as it arrives; the device has no
    // flow control we could apply here beyond its own buffers.
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    if (!this.live) {
      done();
      return;
    }
    writeWhileLive(this, this.file, chunk).then(
      () => {
        done();
      },
      (err: unknown) => {
        done(err instanceof Error ? err : new Error(String(err)));
      },
    );
  }
}

/**
 * Writes `chunk` while `conn`'s host is connected; what is left when it
 * hangs up is dropped (its HTTP/2 session is gone with it).
 */
async function writeWhileLive(
  conn: { live: boolean },
  file: PortDevice,
  chunk: Buffer,
): Promise<void> {
  let off = 0;
  while (off < chunk.length && conn.live) {
    try {
      off += (await file.write(chunk, off, chunk.length - off, null)).bytesWritten;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      // No host (it hung up: the read loop will say so) or a full queue.
      await file.wait('out', WAIT_SLICE_MS / 10);
    }
  }
}
