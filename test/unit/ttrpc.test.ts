import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyValue, Request, Response } from '../../proto/generated/ttrpc.js';
import { TtrpcClient } from '../../runtime/src/ttrpc/client.js';
import {
  encodeFrame,
  FrameDecoder,
  HEADER_LENGTH,
  isOversized,
  MAX_DATA_LENGTH,
  MessageType,
  type Frame,
} from '../../runtime/src/ttrpc/frame.js';
import { TtrpcServer } from '../../runtime/src/ttrpc/server.js';
import { Code, TtrpcError } from '../../runtime/src/ttrpc/status.js';

/** A generic definition shaped as ts-proto emits them, over ttrpc's own KeyValue. */
const EchoDefinition = {
  name: 'Echo',
  fullName: 'test.Echo',
  methods: {
    upper: {
      name: 'Upper',
      requestType: KeyValue,
      requestStream: false,
      responseType: KeyValue,
      responseStream: false,
      options: {},
    },
  },
} as const;

describe('ttrpc frames', () => {
  it('lays a frame out as length, stream id (big-endian), type, flags, data', () => {
    const f = encodeFrame({
      streamId: 0x01020305,
      type: MessageType.Request,
      flags: 0x2,
      data: Buffer.from('abc'),
    });
    expect([...f]).toEqual([0, 0, 0, 3, 1, 2, 3, 5, 1, 2, 0x61, 0x62, 0x63]);
  });

  it('reassembles frames cut at every byte, and several from one chunk', () => {
    const frames: Frame[] = [
      { streamId: 1, type: MessageType.Request, flags: 0, data: Buffer.from('one') },
      { streamId: 3, type: MessageType.Response, flags: 0, data: Buffer.alloc(0) },
      { streamId: 5, type: MessageType.Data, flags: 1, data: Buffer.alloc(70_000, 7) },
    ];
    const bytes = Buffer.concat(frames.map(encodeFrame));
    const byByte = new FrameDecoder();
    const got = [];
    for (let i = 0; i < bytes.length; i++) got.push(...byByte.push(bytes.subarray(i, i + 1)));
    expect(got).toEqual(frames);
    expect(new FrameDecoder().push(bytes)).toEqual(frames);
  });

  it('skips an oversized frame without holding it and decodes the next one', () => {
    const header = Buffer.alloc(HEADER_LENGTH);
    header.writeUInt32BE(MAX_DATA_LENGTH + 1, 0);
    header.writeUInt32BE(7, 4);
    header.writeUInt8(MessageType.Request, 8);
    const next = encodeFrame({ streamId: 9, type: 1, flags: 0, data: Buffer.from('x') });
    const d = new FrameDecoder();
    const first = d.push(Buffer.concat([header, Buffer.alloc(1000)]));
    expect(first).toHaveLength(1);
    const f = first[0];
    expect(f !== undefined && isOversized(f) && f.streamId === 7 && f.oversized).toBe(
      MAX_DATA_LENGTH + 1,
    );
    expect(d.push(Buffer.alloc(MAX_DATA_LENGTH + 1 - 1000 - 10))).toEqual([]);
    expect(d.push(Buffer.concat([Buffer.alloc(10), next]))).toEqual([
      { streamId: 9, type: 1, flags: 0, data: Buffer.from('x') },
    ]);
  });

  it('refuses to encode more than 4 MiB of data', () => {
    expect(() =>
      encodeFrame({ streamId: 1, type: 1, flags: 0, data: Buffer.alloc(MAX_DATA_LENGTH + 1) }),
    ).toThrow(/exceed maximum message size/);
  });
});

describe('ttrpc client and server over a unix socket', () => {
  let dir: string;
  let socket: string;
  const server = new TtrpcServer();
  let client: TtrpcClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ttrpc-'));
    socket = join(dir, 's.sock');
    server.registerDefinition(EchoDefinition, {
      upper: (req) => Promise.resolve({ key: req.key.toUpperCase(), value: req.value }),
    });
    server.register('test.Raw', {
      Echo: (payload) => Promise.resolve(payload),
      // Answers later the smaller its argument: replies come out of order.
      Delay: async (payload) => {
        await new Promise((r) => setTimeout(r, 5 * (10 - (payload[0] ?? 0))));
        return payload;
      },
      NotFound: () => Promise.reject(new TtrpcError(Code.NotFound, 'container x: not found')),
      Broken: () => Promise.reject(new Error('plain failure')),
      Huge: () => Promise.resolve(Buffer.alloc(MAX_DATA_LENGTH + 10)),
      Deadline: (_p, ctx) => Promise.resolve(Buffer.from(String(ctx.deadline !== undefined))),
    });
    await server.listen(socket);
    client = await TtrpcClient.connect(socket);
  });

  afterAll(async () => {
    client.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('round-trips a typed call through a generic definition', async () => {
    const res = await client.call(
      'test.Echo',
      'Upper',
      KeyValue.encode({ key: 'abc', value: 'v' }).finish(),
    );
    expect(KeyValue.decode(res)).toEqual({ key: 'ABC', value: 'v' });
  });

  it('serves concurrent calls on one connection, matched by stream id', async () => {
    const calls = Array.from({ length: 10 }, (_, i) =>
      client.call('test.Raw', 'Delay', Buffer.from([i])),
    );
    const got = await Promise.all(calls);
    expect(got.map((b) => b[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('carries a 1 MiB payload both ways', async () => {
    const big = Buffer.alloc(1 << 20, 0x5a);
    expect((await client.call('test.Raw', 'Echo', big)).equals(big)).toBe(true);
  });

  it('passes the timeout on as the deadline', async () => {
    const res = await client.call('test.Raw', 'Deadline', Buffer.alloc(0), { timeoutMs: 5000 });
    expect(res.toString()).toBe('true');
  });

  it.each([
    ['nope.Service', 'Echo', Code.Unimplemented, 'service nope.Service'],
    ['test.Raw', 'Nope', Code.Unimplemented, 'method Nope'],
    ['test.Raw', 'NotFound', Code.NotFound, 'container x: not found'],
    ['test.Raw', 'Broken', Code.Unknown, 'plain failure'],
    ['test.Raw', 'Huge', Code.ResourceExhausted, 'exceed maximum message size'],
  ])('%s/%s fails with code %i', async (service, method, code, message) => {
    const err = await client.call(service, method, Buffer.alloc(0)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TtrpcError);
    expect((err as TtrpcError).code).toBe(code);
    expect((err as TtrpcError).message).toContain(message);
  });

  it('refuses to send an oversized request', async () => {
    const err = await client
      .call('test.Raw', 'Echo', Buffer.alloc(MAX_DATA_LENGTH + 1))
      .catch((e: unknown) => e);
    expect((err as TtrpcError).code).toBe(Code.ResourceExhausted);
  });

  it('answers an oversized request frame with RESOURCE_EXHAUSTED and keeps the connection', async () => {
    const raw = connect(socket);
    const decoder = new FrameDecoder();
    const frames: Frame[] = [];
    raw.on('data', (c: Buffer) => {
      for (const f of decoder.push(c)) if (!isOversized(f)) frames.push(f);
    });
    await new Promise((r) => raw.once('connect', r));
    const header = Buffer.alloc(HEADER_LENGTH);
    header.writeUInt32BE(MAX_DATA_LENGTH + 5, 0);
    header.writeUInt32BE(11, 4);
    header.writeUInt8(MessageType.Request, 8);
    raw.write(header);
    raw.write(Buffer.alloc(MAX_DATA_LENGTH + 5));
    // A well-formed request after it, written a byte at a time.
    const ok = encodeFrame({
      streamId: 13,
      type: MessageType.Request,
      flags: 0,
      data: Buffer.from(
        Request.encode({
          service: 'test.Raw',
          method: 'Echo',
          payload: Buffer.from('hi'),
          timeoutNano: 0n,
          metadata: [],
        }).finish(),
      ),
    });
    for (const b of ok) raw.write(Buffer.from([b]));
    while (frames.length < 2) await new Promise((r) => setTimeout(r, 20));
    raw.destroy();
    const byStream = new Map(frames.map((f) => [f.streamId, Response.decode(f.data)]));
    expect(byStream.get(11)?.status?.code).toBe(Code.ResourceExhausted);
    expect(byStream.get(13)?.status?.code ?? 0).toBe(Code.OK);
    expect(byStream.get(13)?.payload.toString()).toBe('hi');
  });

  it('fails pending and later calls with UNAVAILABLE when the connection ends', async () => {
    const other = new TtrpcServer();
    const path = join(dir, 'hang.sock');
    other.register('test.Hang', { Forever: () => new Promise<Uint8Array>(() => undefined) });
    await other.listen(path);
    const c = await TtrpcClient.connect(path);
    const pending = c.call('test.Hang', 'Forever', Buffer.alloc(0)).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 50));
    await other.close();
    expect(((await pending) as TtrpcError).code).toBe(Code.Unavailable);
    const later = await c.call('test.Hang', 'Forever', Buffer.alloc(0)).catch((e: unknown) => e);
    expect((later as TtrpcError).code).toBe(Code.Unavailable);
    c.close();
  });
});
