import { chmod, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { messageOf } from '../sys/errors.js';
import {
  decodeHello,
  decodeResize,
  decodeSignal,
  encodeExit,
  encodeFrame,
  encodeOutput,
  FROM_SHIM,
  FrameType,
  type Frame,
  type Hello,
  ShimFrameDecoder,
  ShimFrameError,
} from '../shim/frame.js';
import { Relay } from '../shim/relay.js';
import { waitForStopReason } from '../shim/stop-reason.js';
import type { AgentClient } from './agent-client.js';

/** How long a relay waits for output after its process ended (the Node shim's figure). */
const DRAIN_MS = 5000;

export interface ShimServerOptions {
  /** --root: where the containers' records are (why a container stopped). */
  root: string;
  agent: AgentClient;
  log: Logger;
  /**
   * A shim went away before its process ended: nobody holds the process's
   * stdio or can report its end (serve.ts kills it to match).
   */
  onOrphan(id: string, execId: string): void;
}

/**
 * The sandbox process's side of every per-process shim of its VM
 * (native/host/shim.c): a unix socket in the VM directory, 0600 in a
 * root-only directory, one connection per shim. Each connection gets the
 * same Relay a foreground `run` uses, against the sandbox's own agent
 * connection, with frames (shim/frame.ts) for stdio; signals arrive as
 * frames, never as this process's own. A peer that breaks the protocol
 * loses its connection, with a log line.
 */
export async function serveShims(path: string, o: ShimServerOptions): Promise<Server> {
  await rm(path, { force: true });
  const server = createServer((sock) => {
    relayFor(sock, o);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(path, 0o600);
  server.on('error', (err) => {
    o.log.warn({ err }, 'the shim socket failed');
  });
  return server;
}

function relayFor(sock: Socket, o: ShimServerOptions): void {
  const decoder = new ShimFrameDecoder();
  let hello: Hello | undefined;
  let relay: Relay | undefined;
  const stdin = new PassThrough();
  // Set once the shim was told how its process ended (EXIT or LOST).
  let told = false;
  const send = (frame: Buffer): void => {
    if (sock.writable) sock.write(frame);
  };

  const start = (h: Hello): void => {
    hello = h;
    const sink = (type: typeof FrameType.STDOUT | typeof FrameType.STDERR): Writable =>
      new Writable({
        write(chunk: Buffer, _encoding, done): void {
          // A shim gone drops the rest; its process is killed (onOrphan).
          if (!sock.writable || sock.write(encodeOutput(type, chunk))) done();
          else
            sock.once('drain', () => {
              done();
            });
        },
      });
    const stdout = sink(FrameType.STDOUT);
    const stderr = h.terminal ? undefined : sink(FrameType.STDERR);
    const r = new Relay(
      { agent: o.agent, id: h.id, execId: h.execId },
      { stdout, ...(stderr === undefined ? {} : { stderr }) },
      o.log,
    );
    relay = r;
    r.feedStdin(stdin);
    send(encodeFrame(FrameType.OK));
    void r
      .wait(DRAIN_MS)
      .then(async (exit) => {
        // Every output frame before EXIT: the sinks hand theirs to the socket in order.
        const sinks = [stdout, stderr].filter((s): s is Writable => s !== undefined);
        await Promise.race([
          Promise.all(sinks.map((s) => new Promise((resolve) => s.end(resolve)))),
          sleep(DRAIN_MS, undefined, { ref: false }),
        ]);
        o.log.info({ id: h.id, execId: h.execId, ...exit }, 'process exited');
        told = true;
        send(encodeExit(exit.exitCode, exit.signal));
        sock.end();
      })
      .catch(async (err: unknown) => {
        // An engine reads `state` once the shim is gone: tell it once the
        // container's record says why it stopped (a fault's reason is
        // recorded ~0.3-1 s after the fault).
        const reason = h.execId === '' ? await waitForStopReason(o.root, h.id) : undefined;
        o.log.warn({ err, id: h.id, execId: h.execId, reason }, 'lost a process: its VM is gone');
        told = true;
        send(encodeFrame(FrameType.LOST, Buffer.from(reason ?? messageOf(err))));
        sock.end();
      })
      .finally(() => {
        r.close();
      });
  };

  const handle = (f: Frame): void => {
    if (!FROM_SHIM.has(f.type)) throw new ShimFrameError(`frame type ${f.type} from a shim`);
    if (hello === undefined) {
      if (f.type !== FrameType.HELLO) throw new ShimFrameError('a frame before the hello');
      start(decodeHello(f.payload));
      return;
    }
    const { id, execId } = hello;
    switch (f.type) {
      case FrameType.STDIN:
        if (stdin.writableEnded) throw new ShimFrameError('stdin after its end');
        // The agent takes input slower than it comes: stop reading the shim.
        if (!stdin.write(f.payload) && !sock.isPaused()) {
          sock.pause();
          stdin.once('drain', () => sock.resume());
        }
        return;
      case FrameType.STDIN_EOF:
        stdin.end();
        return;
      case FrameType.SIGNAL:
        o.agent.signalProcess(id, decodeSignal(f.payload), execId).catch((err: unknown) => {
          o.log.debug({ err }, 'forwarding a signal failed');
        });
        return;
      case FrameType.RESIZE: {
        const { rows, columns } = decodeResize(f.payload);
        relay?.resize(rows, columns);
        return;
      }
      default:
        throw new ShimFrameError('a second hello');
    }
  };

  sock.on('data', (chunk: Buffer) => {
    try {
      for (const f of decoder.push(chunk)) handle(f);
    } catch (err) {
      o.log.warn(
        { err, id: hello?.id, execId: hello?.execId },
        'a shim broke the protocol; closing its connection',
      );
      sock.destroy();
    }
  });
  sock.on('error', (err) => {
    o.log.debug({ err }, 'a shim connection failed');
  });
  sock.on('close', () => {
    if (!stdin.writableEnded) stdin.end();
    if (hello !== undefined && !told) o.onOrphan(hello.id, hello.execId);
  });
}
