/**
 * The HTTP/2 client connection preface (RFC 9113 section 3.4): every
 * connection of a gRPC client starts with these 24 bytes. A connection that
 * starts otherwise is not a host speaking the agent API, and is closed
 * before grpc-js (whose sessions wait for a preface without a deadline)
 * holds it open.
 */
export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * How long a connection may take to send its preface: a host sends it at
 * once, in its first write; under TCG a busy guest reads it late, so this
 * is generous.
 */
export const PREFACE_TIMEOUT_MS = 10_000;

/** What the bytes seen so far say about a connection. */
export type PrefaceVerdict = 'http2' | 'garbage' | 'incomplete';

/** Judges the first bytes of a connection, which may come in several pieces. */
export function judgePreface(head: Buffer): PrefaceVerdict {
  const n = Math.min(head.length, HTTP2_PREFACE.length);
  if (!head.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n))) return 'garbage';
  return n === HTTP2_PREFACE.length ? 'http2' : 'incomplete';
}
