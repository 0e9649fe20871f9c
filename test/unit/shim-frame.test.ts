import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  decodeExit,
  decodeHello,
  decodeResize,
  decodeSignal,
  encodeExit,
  encodeFrame,
  encodeHello,
  encodeOutput,
  FRAME_HEADER_BYTES,
  FRAME_MAX,
  FrameType,
  type Frame,
  ShimFrameDecoder,
  ShimFrameError,
} from '../../runtime/src/shim/frame.js';
import { startConsoleReceiver } from '../support/console-receiver.js';
import { ROOT } from '../support/kapsel-cli.js';

describe('shim frames', () => {
  it('round-trips every kind, whatever the chunking', () => {
    const stream = Buffer.concat([
      encodeHello({ id: '-c1', execId: 'exec-1', terminal: true }),
      encodeFrame(FrameType.STDIN, Buffer.from('hello')),
      encodeFrame(FrameType.STDIN_EOF),
      encodeExit(0, 15),
      encodeFrame(FrameType.RESIZE, Buffer.from([0, 24, 0, 80])),
    ]);
    for (const step of [1, 3, 7, stream.length]) {
      const d = new ShimFrameDecoder();
      const frames: Frame[] = [];
      for (let off = 0; off < stream.length; off += step) {
        frames.push(...d.push(stream.subarray(off, off + step)));
      }
      expect(d.pending).toBe(0);
      expect(frames.map((f) => f.type)).toEqual([
        FrameType.HELLO,
        FrameType.STDIN,
        FrameType.STDIN_EOF,
        FrameType.EXIT,
        FrameType.RESIZE,
      ]);
      const [hello, input, , exit, resize] = frames;
      expect(decodeHello(hello?.payload ?? Buffer.alloc(0))).toEqual({
        id: '-c1',
        execId: 'exec-1',
        terminal: true,
      });
      expect(input?.payload.toString()).toBe('hello');
      expect(decodeExit(exit?.payload ?? Buffer.alloc(0))).toEqual({ exitCode: 0, signal: 15 });
      expect(decodeResize(resize?.payload ?? Buffer.alloc(0))).toEqual({ rows: 24, columns: 80 });
    }
  });

  it('cuts output into frames of at most FRAME_MAX', () => {
    const data = Buffer.alloc(FRAME_MAX * 2 + 1, 7);
    const frames = new ShimFrameDecoder().push(encodeOutput(FrameType.STDOUT, data));
    expect(frames.map((f) => f.payload.length)).toEqual([FRAME_MAX, FRAME_MAX, 1]);
    expect(Buffer.concat(frames.map((f) => f.payload))).toEqual(data);
  });

  it.each([
    [
      'a header announcing too long a payload',
      () => new ShimFrameDecoder().push(header(9, FRAME_MAX + 1)),
    ],
    ['a hello without an id', () => decodeHello(Buffer.from([0, 0, 0]))],
    ['a hello with unknown flags', () => decodeHello(Buffer.from([2, 0, 1, 65]))],
    ['a hello whose id runs past its end', () => decodeHello(Buffer.from([0, 0, 5, 65]))],
    ['a signal out of 1..64', () => decodeSignal(Buffer.from([0, 0, 0, 65]))],
    ['a short resize', () => decodeResize(Buffer.from([0, 1]))],
    [
      'too long a payload to encode',
      () => encodeFrame(FrameType.STDOUT, Buffer.alloc(FRAME_MAX + 1)),
    ],
  ])('refuses %s', (_what, f) => {
    expect(f).toThrow(ShimFrameError);
  });
});

function header(type: number, length: number): Buffer {
  const b = Buffer.alloc(FRAME_HEADER_BYTES);
  b.writeUInt8(type, 0);
  b.writeUInt32BE(length, 1);
  return b;
}

// The other end of the same frames: native/host/shim.c, driven by a peer
// that speaks them through the codec above, as the sandbox process does.
const shimBinary = join(ROOT, 'build/native/kapsel-shim');
const skip = existsSync(shimBinary) ? undefined : `${shimBinary} missing (make -C native)`;

describe.skipIf(skip !== undefined)(
  `kapsel-shim against the codec${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'kapsel-shim-frame-'));
    afterAll(() => {
      rmSync(dir, { recursive: true, force: true });
    });

    /**
     * Starts the shim against a one-connection server; `serve` answers its
     * frames. Resolves with the shim's exit, its stdout, its fd 3 verdict and
     * the frames it sent.
     */
    async function runShim(
      name: string,
      serve: (sock: Socket, frame: Frame) => void,
      o: { closedStdout?: boolean; args?: string[] } = {},
    ): Promise<{
      code: number | null;
      signal: string | null;
      out: string;
      told: string;
      sent: Frame[];
      log: string;
    }> {
      const path = join(dir, `${name}.sock`);
      const log = join(dir, `${name}.log`);
      const sent: Frame[] = [];
      const server = createServer((sock) => {
        const d = new ShimFrameDecoder();
        sock.on('data', (chunk: Buffer) => {
          for (const f of d.push(chunk)) {
            sent.push(f);
            serve(sock, f);
          }
        });
        sock.on('error', () => undefined);
      });
      await new Promise<void>((resolve) => server.listen(path, resolve));
      const child = spawn(
        shimBinary,
        ['--socket', path, '--log', log, '--exec-id', 'e1', ...(o.args ?? []), '--', 'c1'],
        // Its own session, as startDetached makes it: a pty can become its terminal.
        { stdio: ['pipe', 'pipe', 'inherit', 'pipe'], detached: true },
      );
      let out = '';
      let told = '';
      if (o.closedStdout === true) child.stdout?.destroy();
      else child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
      child.stdio[3]?.on('data', (b: Buffer) => (told += b.toString()));
      child.stdin?.end('typed');
      const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => {
        child.once('close', (c, s) => {
          resolve([c, s]);
        });
      });
      server.close();
      return { code, signal, out, told, sent, log: readFileSync(log, 'utf8') };
    }

    it('says hello, relays stdin and stdout, ends by the signal its process died of', async () => {
      const r = await runShim('term', (sock, f) => {
        if (f.type === FrameType.HELLO) {
          sock.write(encodeFrame(FrameType.OK));
          sock.write(encodeOutput(FrameType.STDOUT, Buffer.from('from the guest\n')));
        } else if (f.type === FrameType.STDIN_EOF) {
          sock.write(encodeExit(143, 15));
        }
      });
      expect(r.told).toBe('ok');
      expect(decodeHello(r.sent[0]?.payload ?? Buffer.alloc(0))).toEqual({
        id: 'c1',
        execId: 'e1',
        terminal: false,
      });
      expect(
        r.sent.filter((f) => f.type === FrameType.STDIN).map((f) => f.payload.toString()),
      ).toEqual(['typed']);
      expect(r.out).toBe('from the guest\n');
      expect([r.code, r.signal]).toEqual([null, 'SIGTERM']);
      expect(r.log).toMatch(/"msg":"process exited".*"exitCode":143,"signal":15/);
    });

    it('tells its starter why it was refused, and exits 1', async () => {
      const r = await runShim('refused', (sock) => {
        sock.write(encodeFrame(FrameType.ERROR, Buffer.from('no such process')));
      });
      expect(r.told).toBe('no such process');
      expect(r.code).toBe(1);
    });

    it('a reader gone from its stdout: SIGPIPE goes to the process once, output is dropped', async () => {
      const r = await runShim(
        'epipe',
        (sock, f) => {
          if (f.type === FrameType.HELLO) {
            sock.write(encodeFrame(FrameType.OK));
            for (let i = 0; i < 3; i++)
              sock.write(encodeOutput(FrameType.STDOUT, Buffer.from('y\n')));
          } else if (f.type === FrameType.SIGNAL) {
            // After the SIGPIPE, output the shim can only drop, then the end.
            sock.write(encodeOutput(FrameType.STDOUT, Buffer.from('dropped\n')));
            sock.write(encodeExit(141, 0));
          }
        },
        { closedStdout: true },
      );
      expect(
        r.sent.filter((f) => f.type === FrameType.SIGNAL).map((f) => decodeSignal(f.payload)),
      ).toEqual([13]);
      expect(r.code).toBe(141);
    });

    it('a connection that drops without an exit: 255', async () => {
      const r = await runShim('lost', (sock, f) => {
        if (f.type === FrameType.HELLO) {
          sock.write(encodeFrame(FrameType.OK));
          sock.end();
        }
      });
      expect(r.code).toBe(255);
      expect(r.log).toMatch(/"level":"error","msg":"lost the process: its VM is gone"/);
    });

    it('LOST: 255, with the reason in its log', async () => {
      const r = await runShim('lost-reason', (sock, f) => {
        if (f.type === FrameType.HELLO) {
          sock.write(encodeFrame(FrameType.OK));
          sock.write(encodeFrame(FrameType.LOST, Buffer.from('qemu (pid 1) killed by SIGKILL')));
        }
      });
      expect(r.code).toBe(255);
      expect(r.log).toContain('"reason":"qemu (pid 1) killed by SIGKILL"');
    });

    it('--console-socket: a raw pty master and its name go to the socket; the slave is relayed and resized', async () => {
      const consoleSocket = join(dir, 'console.sock');
      const receiver = await startConsoleReceiver(consoleSocket, 'typed on the master');
      let typed = '';
      let resized = false;
      const r = await runShim(
        'tty',
        (sock, f) => {
          if (f.type === FrameType.HELLO) sock.write(encodeFrame(FrameType.OK));
          if (f.type === FrameType.STDIN) typed += f.payload.toString();
          if (f.type === FrameType.RESIZE) {
            resized ||= decodeResize(f.payload).rows === 31;
          }
          if (typed === 'typed on the master\n' && resized) {
            sock.write(encodeOutput(FrameType.STDOUT, Buffer.from('from the guest\n')));
            sock.write(encodeExit(0, 0));
          }
        },
        { args: ['--console-socket', consoleSocket] },
      );
      await receiver.exited;
      const said = receiver.said();
      expect(r.told).toBe('ok');
      expect(decodeHello(r.sent[0]?.payload ?? Buffer.alloc(0)).terminal).toBe(true);
      expect(said).toMatch(/name=\/dev\/pts\/\d+/);
      // Raw both ways: no echo of the typed line, no CR added to the output.
      expect(said).toContain("seen=b'from the guest\\n'");
      expect(
        r.sent.filter((f) => f.type === FrameType.RESIZE).map((f) => decodeResize(f.payload)),
      ).toContainEqual({ rows: 31, columns: 101 });
      expect(r.code).toBe(0);
    });
  },
);
