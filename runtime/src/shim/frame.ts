/**
 * The framing between a per-process shim (native/host/shim.c, which defines
 * the same layout) and the sandbox process that relays for it
 * (sandbox/shim-server.ts), on the VM directory's shim socket. Both
 * directions, integers big-endian:
 *
 *   u8 type | u32 length N (at most FRAME_MAX) | N bytes
 *
 * The shim opens with HELLO and is answered OK or ERROR once; then STDOUT,
 * STDERR and last EXIT or LOST flow to it, STDIN, STDIN_EOF, SIGNAL and
 * RESIZE from it.
 */

export const FRAME_HEADER_BYTES = 5;
/** The largest payload either side sends or takes; output is cut to this. */
export const FRAME_MAX = 65_536;

export const FrameType = {
  /** u8 flags (bit 0: a terminal) | u16 id length | id | exec id. */
  HELLO: 1,
  OK: 2,
  /** Why the sandbox process cannot relay the process (text). */
  ERROR: 3,
  STDOUT: 4,
  STDERR: 5,
  /** i32 exit code | i32 signal (0 when none). */
  EXIT: 6,
  /** Why the process's end is unknown (text): its VM is gone. */
  LOST: 7,
  STDIN: 8,
  STDIN_EOF: 9,
  /** u32 signal number. */
  SIGNAL: 10,
  /** u16 rows | u16 columns. */
  RESIZE: 11,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** What a shim may send; anything else from it ends its connection. */
export const FROM_SHIM: ReadonlySet<number> = new Set([
  FrameType.HELLO,
  FrameType.STDIN,
  FrameType.STDIN_EOF,
  FrameType.SIGNAL,
  FrameType.RESIZE,
]);

export interface Frame {
  type: number;
  payload: Buffer;
}

export interface Hello {
  id: string;
  execId: string;
  terminal: boolean;
}

/** The stream is not (or no longer) a sequence of frames: drop the connection. */
export class ShimFrameError extends Error {
  override readonly name = 'ShimFrameError';
}

export function encodeFrame(type: FrameType, payload: Buffer = Buffer.alloc(0)): Buffer {
  if (payload.length > FRAME_MAX) {
    throw new ShimFrameError(`a payload of ${payload.length} bytes exceeds ${FRAME_MAX}`);
  }
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  b.writeUInt8(type, 0);
  b.writeUInt32BE(payload.length, 1);
  payload.copy(b, FRAME_HEADER_BYTES);
  return b;
}

/** Output cut into frames of at most FRAME_MAX bytes each. */
export function encodeOutput(
  type: typeof FrameType.STDOUT | typeof FrameType.STDERR,
  data: Buffer,
): Buffer {
  const parts: Buffer[] = [];
  for (let off = 0; off < data.length; off += FRAME_MAX) {
    parts.push(encodeFrame(type, data.subarray(off, off + FRAME_MAX)));
  }
  return Buffer.concat(parts);
}

export function encodeHello(h: Hello): Buffer {
  const id = Buffer.from(h.id);
  const execId = Buffer.from(h.execId);
  const b = Buffer.allocUnsafe(3 + id.length + execId.length);
  b.writeUInt8(h.terminal ? 1 : 0, 0);
  b.writeUInt16BE(id.length, 1);
  id.copy(b, 3);
  execId.copy(b, 3 + id.length);
  return encodeFrame(FrameType.HELLO, b);
}

/** @throws ShimFrameError when the payload is not a HELLO's */
export function decodeHello(payload: Buffer): Hello {
  if (payload.length < 3) throw new ShimFrameError('a hello of fewer than 3 bytes');
  const flags = payload.readUInt8(0);
  const idLength = payload.readUInt16BE(1);
  if (flags > 1 || idLength === 0 || 3 + idLength > payload.length) {
    throw new ShimFrameError('a hello with bad flags or id length');
  }
  return {
    terminal: flags === 1,
    id: payload.subarray(3, 3 + idLength).toString(),
    execId: payload.subarray(3 + idLength).toString(),
  };
}

export function encodeExit(exitCode: number, signal: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeInt32BE(exitCode, 0);
  b.writeInt32BE(signal, 4);
  return encodeFrame(FrameType.EXIT, b);
}

export function decodeExit(payload: Buffer): { exitCode: number; signal: number } {
  if (payload.length !== 8) throw new ShimFrameError(`an exit of ${payload.length} bytes`);
  return { exitCode: payload.readInt32BE(0), signal: payload.readInt32BE(4) };
}

/** @throws ShimFrameError unless the payload is one u32 in 1..64 (SIGRTMAX) */
export function decodeSignal(payload: Buffer): number {
  const n = payload.length === 4 ? payload.readUInt32BE(0) : 0;
  if (n < 1 || n > 64) throw new ShimFrameError('a signal frame without a signal number');
  return n;
}

export function decodeResize(payload: Buffer): { rows: number; columns: number } {
  if (payload.length !== 4) throw new ShimFrameError(`a resize of ${payload.length} bytes`);
  return { rows: payload.readUInt16BE(0), columns: payload.readUInt16BE(2) };
}

/**
 * Splits a byte stream into frames; bytes arrive in any chunking. `push`
 * throws ShimFrameError at the first header that cannot be one (too long),
 * after which the decoder must be dropped.
 */
export class ShimFrameDecoder {
  #buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: Frame[] = [];
    let off = 0;
    while (this.#buf.length - off >= FRAME_HEADER_BYTES) {
      const length = this.#buf.readUInt32BE(off + 1);
      if (length > FRAME_MAX) {
        throw new ShimFrameError(`a frame of ${length} bytes exceeds ${FRAME_MAX}`);
      }
      if (this.#buf.length - off < FRAME_HEADER_BYTES + length) break;
      const start = off + FRAME_HEADER_BYTES;
      out.push({
        type: this.#buf.readUInt8(off),
        payload: Buffer.from(this.#buf.subarray(start, start + length)),
      });
      off = start + length;
    }
    this.#buf = this.#buf.subarray(off);
    return out;
  }

  /** Bytes of an incomplete frame held. */
  get pending(): number {
    return this.#buf.length;
  }
}
