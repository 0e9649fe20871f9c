/*
 * ttrpc's message frame (github.com/containerd/ttrpc PROTOCOL.md, "Message
 * Frame"): a 10-byte header, then the data.
 *
 *   data length (u32 BE) | stream id (u32 BE) | type (u8) | flags (u8) | data
 */

export const HEADER_LENGTH = 10;
/** PROTOCOL.md: "The maximum data length is 4MB and any larger size should be rejected." */
export const MAX_DATA_LENGTH = 4 << 20;

export const MessageType = { Request: 0x1, Response: 0x2, Data: 0x3 } as const;

/** Request and Data flags; a Request with none is unary. */
export const Flags = { RemoteClosed: 0x1, RemoteOpen: 0x2, NoData: 0x4 } as const;

export interface Frame {
  streamId: number;
  type: number;
  flags: number;
  data: Buffer;
}

/**
 * A frame whose header announced more than MAX_DATA_LENGTH bytes: its data
 * was skipped, never buffered, and its stream gets a RESOURCE_EXHAUSTED
 * status (what ttrpc's Go channel does).
 */
export interface OversizedFrame {
  streamId: number;
  type: number;
  flags: number;
  oversized: number;
}

export class FrameTooLargeError extends Error {
  override readonly name = 'FrameTooLargeError';
  constructor(readonly length: number) {
    super(`message length ${length} exceed maximum message size of ${MAX_DATA_LENGTH}`);
  }
}

/** One frame as bytes; throws FrameTooLargeError past MAX_DATA_LENGTH. */
export function encodeFrame(f: Frame): Buffer {
  if (f.data.length > MAX_DATA_LENGTH) throw new FrameTooLargeError(f.data.length);
  const out = Buffer.allocUnsafe(HEADER_LENGTH + f.data.length);
  out.writeUInt32BE(f.data.length, 0);
  out.writeUInt32BE(f.streamId >>> 0, 4);
  out.writeUInt8(f.type, 8);
  out.writeUInt8(f.flags, 9);
  f.data.copy(out, HEADER_LENGTH);
  return out;
}

/**
 * Reassembles frames from a byte stream however it was cut: push() every
 * chunk read, take the frames complete so far. An oversized frame's data is
 * counted off as it arrives, so a peer cannot make us hold it.
 */
export class FrameDecoder {
  #pending: Buffer[] = [];
  #pendingLength = 0;
  /** The header of the frame whose data is awaited. */
  #header: { length: number; streamId: number; type: number; flags: number } | undefined;
  /** Bytes of an oversized frame still to skip. */
  #skipping = 0;

  push(chunk: Buffer): (Frame | OversizedFrame)[] {
    const out: (Frame | OversizedFrame)[] = [];
    let buf = chunk;
    if (this.#skipping > 0) {
      const n = Math.min(this.#skipping, buf.length);
      this.#skipping -= n;
      buf = buf.subarray(n);
    }
    if (buf.length > 0) {
      this.#pending.push(buf);
      this.#pendingLength += buf.length;
    }
    for (;;) {
      if (this.#header === undefined) {
        if (this.#pendingLength < HEADER_LENGTH) break;
        const head = this.#take(HEADER_LENGTH);
        this.#header = {
          length: head.readUInt32BE(0),
          streamId: head.readUInt32BE(4),
          type: head.readUInt8(8),
          flags: head.readUInt8(9),
        };
      }
      const { length, ...header } = this.#header;
      if (length > MAX_DATA_LENGTH) {
        const n = Math.min(length, this.#pendingLength);
        this.#take(n);
        this.#skipping = length - n;
        this.#header = undefined;
        out.push({ ...header, oversized: length });
        if (this.#skipping > 0) break;
        continue;
      }
      if (this.#pendingLength < length) break;
      this.#header = undefined;
      out.push({ ...header, data: this.#take(length) });
    }
    return out;
  }

  /** Consumes the next `n` bytes (n <= #pendingLength). */
  #take(n: number): Buffer {
    const all =
      this.#pending.length === 1
        ? (this.#pending[0] ?? Buffer.alloc(0))
        : Buffer.concat(this.#pending, this.#pendingLength);
    const rest = all.subarray(n);
    this.#pending = rest.length > 0 ? [rest] : [];
    this.#pendingLength = rest.length;
    return Buffer.from(all.subarray(0, n));
  }
}

export function isOversized(f: Frame | OversizedFrame): f is OversizedFrame {
  return 'oversized' in f;
}
