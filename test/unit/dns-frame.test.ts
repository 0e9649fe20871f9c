import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DnsFrameError,
  encodeFrame,
  FrameDecoder,
  servfailFor,
} from '../../runtime/src/sandbox/network/dns-frame.js';
import { isLoopbackV4 } from '../../runtime/src/sandbox/network/dns-relay.js';
import {
  loopbackNameserver,
  loopbackNameserverOf,
} from '../../runtime/src/sandbox/network/resolv-conf.js';

/** A query for `name` A IN with DNS ID `id` (RFC 1035 4.1). */
function query(id: number, name: string): Buffer {
  const qname = Buffer.concat([
    ...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
    Buffer.from([0]),
  ]);
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(0x0100, 2);
  h.writeUInt16BE(1, 4);
  return Buffer.concat([h, qname, Buffer.from([0, 1, 0, 1])]);
}

describe('DNS relay frames', () => {
  it('lays a frame out as version, transport, length, id, message (big-endian)', () => {
    const msg = query(0xabcd, 'web');
    const f = encodeFrame({ transport: 'tcp', id: 0x01020304, message: msg });
    expect([...f.subarray(0, 8)]).toEqual([1, 1, 0, msg.length, 1, 2, 3, 4]);
    expect(f.subarray(8).equals(msg)).toBe(true);
    expect(encodeFrame({ transport: 'udp', id: 7, message: msg }).readUInt8(1)).toBe(0);
  });

  it('decodes frames split at every byte and several in one chunk', () => {
    const frames = [
      { transport: 'udp' as const, id: 1, message: query(1, 'a.example') },
      { transport: 'tcp' as const, id: 0xffff_ffff, message: query(2, 'b') },
    ];
    const bytes = Buffer.concat(frames.map(encodeFrame));
    const byteWise = new FrameDecoder();
    const got = [...bytes].flatMap((b) => byteWise.push(Buffer.from([b])));
    expect(got).toEqual(frames);
    expect(byteWise.pending).toBe(0);
    expect(new FrameDecoder().push(bytes)).toEqual(frames);
    const half = new FrameDecoder();
    expect(half.push(bytes.subarray(0, 10))).toEqual([]);
    expect(half.pending).toBe(10);
  });

  it('carries the largest message TCP allows', () => {
    const message = Buffer.alloc(65_535, 7);
    const [f] = new FrameDecoder().push(encodeFrame({ transport: 'tcp', id: 9, message }));
    expect(f?.message.length).toBe(65_535);
  });

  it.each([
    { name: 'a wrong version', bytes: [2, 0, 0, 12, 0, 0, 0, 1], errorContains: 'version 2' },
    {
      name: 'an unknown transport',
      bytes: [1, 5, 0, 12, 0, 0, 0, 1],
      errorContains: 'transport 5',
    },
    {
      name: 'a message shorter than a DNS header',
      bytes: [1, 0, 0, 3, 0, 0, 0, 1],
      errorContains: 'length 3',
    },
  ])('refuses $name', ({ bytes, errorContains }) => {
    expect(() => new FrameDecoder().push(Buffer.from(bytes))).toThrow(DnsFrameError);
    expect(() => new FrameDecoder().push(Buffer.from(bytes))).toThrow(errorContains);
  });

  it.each([
    { name: 'a message under 12 bytes', message: Buffer.alloc(11), id: 1 },
    { name: 'a message over 65535 bytes', message: Buffer.alloc(65_536), id: 1 },
    { name: 'an id over u32', message: Buffer.alloc(12), id: 2 ** 32 },
  ])('will not frame $name', ({ message, id }) => {
    expect(() => encodeFrame({ transport: 'udp', id, message })).toThrow(DnsFrameError);
  });
});

describe('servfailFor', () => {
  it("answers SERVFAIL with the query's ID, RD and question", () => {
    const q = query(0x1234, 'web.test');
    const a = servfailFor(q);
    expect(a).toBeDefined();
    if (a === undefined) return;
    expect(a.readUInt16BE(0)).toBe(0x1234);
    const flags = a.readUInt16BE(2);
    expect(flags & 0x8000).toBe(0x8000); // QR
    expect(flags & 0x0100).toBe(0x0100); // RD kept
    expect(flags & 0xf).toBe(2); // SERVFAIL
    expect([a.readUInt16BE(4), a.readUInt16BE(6), a.readUInt16BE(8), a.readUInt16BE(10)]).toEqual([
      1, 0, 0, 0,
    ]);
    expect(a.subarray(12).equals(q.subarray(12))).toBe(true);
  });

  it('gives nothing for a query without one well-formed question', () => {
    expect(servfailFor(Buffer.alloc(12))).toBeUndefined();
    expect(servfailFor(query(1, 'web.test').subarray(0, 18))).toBeUndefined();
  });
});

describe('the loopback nameserver of a resolv.conf', () => {
  it.each([
    {
      name: "Docker's on a user-defined network",
      text: 'nameserver 127.0.0.11\noptions ndots:0\n',
      want: '127.0.0.11',
    },
    {
      name: 'the first loopback one',
      text: 'nameserver 10.0.0.2\nnameserver 127.0.0.53\nnameserver 127.0.0.11\n',
      want: '127.0.0.53',
    },
    {
      name: 'none on the default bridge',
      text: 'nameserver 8.8.8.8\nsearch example.com\n',
      want: undefined,
    },
    {
      name: 'none in a comment',
      text: '# nameserver 127.0.0.11\n; nameserver 127.0.0.1\n',
      want: undefined,
    },
    { name: 'no IPv6 loopback', text: 'nameserver ::1\n', want: undefined },
    {
      name: 'tabs and a trailing comment',
      text: '\tnameserver\t127.0.0.11 # docker\n',
      want: '127.0.0.11',
    },
  ])('$name', ({ text, want }) => {
    expect(loopbackNameserverOf(text)).toBe(want);
  });

  it('is in 127.0.0.0/8 only', () => {
    expect(isLoopbackV4('127.0.0.11')).toBe(true);
    expect(isLoopbackV4('127.255.255.255')).toBe(true);
    expect(isLoopbackV4('127.0.0.256')).toBe(false);
    expect(isLoopbackV4('128.0.0.1')).toBe(false);
    expect(isLoopbackV4('127.0.0.11 ')).toBe(false);
  });

  it("reads the source of the spec's /etc/resolv.conf bind mount, never writing it", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kapsel-resolv-'));
    try {
      const file = join(dir, 'resolv.conf');
      writeFileSync(file, 'nameserver 127.0.0.11\n');
      const spec = {
        ociVersion: '1.0.2',
        mounts: [
          { destination: '/etc/hosts', source: join(dir, 'hosts'), type: 'bind' },
          { destination: '/etc/resolv.conf', source: file, type: 'bind', options: ['rbind'] },
        ],
      };
      expect(await loopbackNameserver(spec, dir)).toBe('127.0.0.11');
      expect(await loopbackNameserver({ ociVersion: '1.0.2' }, dir)).toBeUndefined();
      const missing = {
        ...spec,
        mounts: [{ destination: '/etc/resolv.conf', source: join(dir, 'gone') }],
      };
      expect(await loopbackNameserver(missing, dir)).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
