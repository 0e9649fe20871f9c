/**
 * The framing of DNS messages on the virtio-serial port `kapsel.dns.0`
 * between the guest's kapsel-dns-relay (native/dns/relay.c, which defines
 * the same layout) and the sandbox monitor. Both directions, big-endian:
 *
 *   u8 version (1) | u8 transport (0 UDP, 1 TCP) | u16 length N | u32 id | N bytes DNS message
 *
 * The id is the guest relay's; an answer carries its query's id and
 * transport. N is 12..65535: a DNS header alone is 12 bytes (RFC 1035
 * 4.1.1), and a TCP message is at most 65535 (RFC 1035 4.2.2).
 */

export const FRAME_VERSION = 1;
export const FRAME_HEADER_BYTES = 8;
export const DNS_HEADER_BYTES = 12;
export const DNS_MAX_BYTES = 65_535;

export type DnsTransport = 'udp' | 'tcp';

export interface DnsFrame {
  transport: DnsTransport;
  id: number;
  message: Buffer;
}

/** The stream is not (or no longer) a sequence of frames: drop the connection. */
export class DnsFrameError extends Error {
  override readonly name = 'DnsFrameError';
}

export function encodeFrame(f: DnsFrame): Buffer {
  if (f.message.length < DNS_HEADER_BYTES || f.message.length > DNS_MAX_BYTES) {
    throw new DnsFrameError(`a DNS message of ${f.message.length} bytes cannot be framed`);
  }
  if (!Number.isInteger(f.id) || f.id < 0 || f.id > 0xffff_ffff) {
    throw new DnsFrameError(`frame id ${f.id} is not a u32`);
  }
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + f.message.length);
  b.writeUInt8(FRAME_VERSION, 0);
  b.writeUInt8(f.transport === 'udp' ? 0 : 1, 1);
  b.writeUInt16BE(f.message.length, 2);
  b.writeUInt32BE(f.id, 4);
  f.message.copy(b, FRAME_HEADER_BYTES);
  return b;
}

/**
 * Splits a byte stream into frames; bytes arrive in any chunking. `push`
 * throws DnsFrameError at the first header that cannot be one (wrong
 * version, transport or length), after which the decoder must be dropped.
 */
export class FrameDecoder {
  #buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): DnsFrame[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: DnsFrame[] = [];
    let off = 0;
    while (this.#buf.length - off >= FRAME_HEADER_BYTES) {
      const version = this.#buf.readUInt8(off);
      const transport = this.#buf.readUInt8(off + 1);
      const len = this.#buf.readUInt16BE(off + 2);
      if (version !== FRAME_VERSION || transport > 1 || len < DNS_HEADER_BYTES) {
        throw new DnsFrameError(
          `not a kapsel DNS frame (version ${version}, transport ${transport}, length ${len})`,
        );
      }
      if (this.#buf.length - off < FRAME_HEADER_BYTES + len) break;
      out.push({
        transport: transport === 0 ? 'udp' : 'tcp',
        id: this.#buf.readUInt32BE(off + 4),
        // A copy: the buffer is reused for the next chunk.
        message: Buffer.from(
          this.#buf.subarray(off + FRAME_HEADER_BYTES, off + FRAME_HEADER_BYTES + len),
        ),
      });
      off += FRAME_HEADER_BYTES + len;
    }
    this.#buf = this.#buf.subarray(off);
    return out;
  }

  /** Bytes of an incomplete frame held back. */
  get pending(): number {
    return this.#buf.length;
  }
}

/**
 * A SERVFAIL answer to `query` (RFC 1035 4.1.1: same ID, QR=1, the query's
 * opcode and RD, RCODE 2), echoing its question so that resolvers that
 * match the question (glibc's res_queriesmatch) take it. undefined when the
 * query has no single well-formed question to echo.
 */
export function servfailFor(query: Buffer): Buffer | undefined {
  if (query.length < DNS_HEADER_BYTES || query.readUInt16BE(4) !== 1) return undefined;
  let off = DNS_HEADER_BYTES;
  // The question's name: labels up to the root label (no compression in a query).
  for (;;) {
    if (off >= query.length) return undefined;
    const n = query.readUInt8(off);
    if (n === 0) break;
    if (n > 63) return undefined;
    off += 1 + n;
  }
  const end = off + 1 + 4; // root label, QTYPE, QCLASS
  if (end > query.length) return undefined;
  const out = Buffer.alloc(end);
  query.copy(out, 0, 0, end);
  const flags = query.readUInt16BE(2);
  // QR | opcode (bits 11-14) | RD (bit 8) | RA | RCODE=2
  out.writeUInt16BE(0x8000 | (flags & 0x7800) | (flags & 0x0100) | 0x0080 | 2, 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(0, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(0, 10);
  return out;
}
