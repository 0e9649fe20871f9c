// The byte formats shared with native/lib/protocol.h, and the recording fake.
import { describe, expect, it } from 'vitest';
import { FakeNative } from '../../agent/src/native/fake.js';
import {
  Msg,
  RECORD_SIZE,
  RecordReader,
  Tag,
  decodeWaitStatus,
  encodeCommand,
  encodeSpawnRequest,
} from '../../agent/src/native/protocol.js';
import { NativeError, type SpawnRequest } from '../../agent/src/native/types.js';

const base: SpawnRequest = {
  namespaces: ['mount', 'pid'],
  rootfs: '/r',
  mounts: [{ source: 'proc', target: '/proc', fstype: 'proc', flags: 14, data: '' }],
  hostname: 'h',
  args: ['sh', '-c', 'true'],
  env: ['PATH=/bin'],
  cwd: '/',
  uid: 1,
  gid: 2,
};

/** Splits an encoded request back into [tag, payload] pairs. */
function fields(buf: Buffer): [number, Buffer][] {
  expect(buf.subarray(0, 4).toString('latin1')).toBe('KPS1');
  const out: [number, Buffer][] = [];
  let off = 4;
  while (off < buf.length) {
    const tag = buf.readUInt32LE(off);
    const len = buf.readUInt32LE(off + 4);
    out.push([tag, buf.subarray(off + 8, off + 8 + len)]);
    off += 8 + len;
  }
  expect(off).toBe(buf.length);
  return out;
}

describe('encodeSpawnRequest', () => {
  it('writes one field per value, strings NUL-terminated', () => {
    const f = fields(encodeSpawnRequest(base));
    const u32 = (n: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(n);
      return b;
    };
    const str = (s: string): Buffer => Buffer.from(`${s}\0`);
    expect(f).toEqual([
      [Tag.newNs, u32(0x00020000 | 0x20000000)],
      [Tag.rootfs, str('/r')],
      [
        Tag.mount,
        Buffer.concat([u32(14), u32(0), str('proc'), str('/proc'), str('proc'), str('')]),
      ],
      [Tag.hostname, str('h')],
      [Tag.arg, str('sh')],
      [Tag.arg, str('-c')],
      [Tag.arg, str('true')],
      [Tag.env, str('PATH=/bin')],
      [Tag.cwd, str('/')],
      [Tag.uid, u32(1)],
      [Tag.gid, u32(2)],
    ]);
  });

  it('encodes the optional parts', () => {
    const f = fields(
      encodeSpawnRequest({
        ...base,
        joinNamespaces: [{ kind: 'network', path: '/proc/9/ns/net' }],
        additionalGids: [5, 6],
        umask: 0o027,
        readonlyRootfs: true,
        rootPropagation: 0x40000,
      }),
    );
    const tags = f.map(([t]) => t);
    expect(tags).toEqual(
      expect.arrayContaining([Tag.joinNs, Tag.group, Tag.umask, Tag.flags, Tag.rootPropagation]),
    );
    const join = f.find(([t]) => t === Tag.joinNs)?.[1];
    expect(join?.readUInt32LE(0)).toBe(0x40000000);
    expect(join?.subarray(4).toString()).toBe('/proc/9/ns/net\0');
    expect(f.find(([t]) => t === Tag.flags)?.[1].readUInt32LE(0)).toBe(1);
  });

  it('refuses what C cannot carry', () => {
    expect(() => encodeSpawnRequest({ ...base, args: ['a\0b'] })).toThrow(RangeError);
    expect(() => encodeSpawnRequest({ ...base, uid: -1 })).toThrow(RangeError);
    expect(() => encodeSpawnRequest({ ...base, gid: 2 ** 32 })).toThrow(RangeError);
  });
});

describe('control records', () => {
  it('cuts a byte stream into records, whatever the chunking', () => {
    const rec = Buffer.alloc(RECORD_SIZE);
    rec.writeInt32LE(Msg.error, 0);
    rec.writeInt32LE(42, 4);
    rec.writeInt32LE(2, 8);
    rec.write('mount\0', 16);
    rec.write('/proc\0', 48);
    rec.write('mount `proc` to `/proc`: No such file or directory\0', 528);
    const stream = Buffer.concat([rec, encodeCommand(Msg.exited, 0x0900)]);
    const reader = new RecordReader();
    const got = [
      ...reader.push(stream.subarray(0, 100)),
      ...reader.push(stream.subarray(100, 1500)),
      ...reader.push(stream.subarray(1500)),
    ];
    expect(got).toEqual([
      {
        type: Msg.error,
        value: 42,
        err: 2,
        syscall: 'mount',
        path: '/proc',
        message: 'mount `proc` to `/proc`: No such file or directory',
      },
      { type: Msg.exited, value: 0x0900, err: 0, syscall: '', path: '', message: '' },
    ]);
  });

  it.each([
    [0x0000, { exitCode: 0, signal: 0 }],
    [0x0700, { exitCode: 7, signal: 0 }],
    [0x0009, { exitCode: 137, signal: 9 }],
    [0x008f, { exitCode: 143, signal: 15 }], // core dump bit set
  ])('decodes wait status %i', (status, want) => {
    expect(decodeWaitStatus(status)).toEqual(want);
  });
});

describe('FakeNative', () => {
  it('records calls in order and plays its script', async () => {
    const fake = new FakeNative();
    fake.failMount('/bad', new NativeError('mount `x` to `/bad`: No such device', 19));
    await fake.mount('share', '/run/s', 'virtiofs', 0, '');
    await expect(fake.mount('x', '/bad', 'virtiofs', 0, '')).rejects.toMatchObject({
      code: 'ENODEV',
    });
    const proc = await fake.spawn(base);
    await proc.start();
    proc.signal(15);
    proc.signal(9);
    expect(await proc.exited).toEqual({ exitCode: 137, signal: 9 });
    fake.failNextSpawn(new NativeError('exec: "x": executable file not found in $PATH', 2));
    await expect(fake.spawn(base)).rejects.toThrow(/not found in \$PATH/);
    expect(fake.calls.map((c) => c.op)).toEqual([
      'mount',
      'mount',
      'spawn',
      'start',
      'signal',
      'signal',
      'spawn',
    ]);
    expect(fake.callsOf('signal').map((c) => c.signo)).toEqual([15, 9]);
  });
});
