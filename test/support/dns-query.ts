// A DNS client for test/host/dns-relay, run inside a test network namespace:
//   node --import tsx dns-query.ts udp|tcp|tcp-pipelined SERVER NAME...
// Prints one line per name: "NAME rcode=N a=IP,IP" (RFC 1035 A records).
// tcp-pipelined sends every query on one connection before reading
// (RFC 7766 6.2.1.1); tcp and udp use one exchange per name.
import { connect } from 'node:net';
import { queryTcp, queryUdp } from '../../runtime/src/sandbox/network/dns-relay.js';

export function buildQuery(id: number, name: string): Buffer {
  const labels = name.split('.').filter((l) => l !== '');
  const qname = Buffer.concat([
    ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
    Buffer.from([0]),
  ]);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(1, 0); // A
  tail.writeUInt16BE(1, 2); // IN
  return Buffer.concat([header, qname, tail]);
}

function skipName(msg: Buffer, off: number): number {
  for (;;) {
    const n = msg.readUInt8(off);
    if (n === 0) return off + 1;
    if ((n & 0xc0) === 0xc0) return off + 2;
    off += 1 + n;
  }
}

export function describeAnswer(name: string, msg: Buffer): string {
  const rcode = msg.readUInt16BE(2) & 0xf;
  const tc = (msg.readUInt16BE(2) & 0x0200) !== 0;
  let off = 12;
  for (let i = 0; i < msg.readUInt16BE(4); i++) off = skipName(msg, off) + 4;
  const a: string[] = [];
  for (let i = 0; i < msg.readUInt16BE(6); i++) {
    off = skipName(msg, off);
    const type = msg.readUInt16BE(off);
    const len = msg.readUInt16BE(off + 8);
    if (type === 1 && len === 4) a.push([...msg.subarray(off + 10, off + 14)].join('.'));
    off += 10 + len;
  }
  return `${name} rcode=${rcode}${tc ? ' tc' : ''} a=${a.join(',')}`;
}

async function pipelined(server: string, names: string[]): Promise<string[]> {
  const sock = connect({ host: server, port: 53 });
  await new Promise((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  for (const [i, n] of names.entries()) {
    const q = buildQuery(0x1000 + i, n);
    const len = Buffer.alloc(2);
    len.writeUInt16BE(q.length);
    sock.write(Buffer.concat([len, q]));
  }
  const lines = new Map<number, string>();
  let buf = Buffer.alloc(0);
  await new Promise<void>((resolve, reject) => {
    sock.on('error', reject);
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        const i = msg.readUInt16BE(0) - 0x1000;
        lines.set(i, describeAnswer(names[i] ?? '?', msg));
      }
      if (lines.size === names.length) resolve();
    });
  });
  sock.destroy();
  return names.map((_, i) => lines.get(i) ?? '');
}

if (process.argv[1]?.endsWith('dns-query.ts') === true) {
  const [mode, server, ...names] = process.argv.slice(2);
  if (server === undefined)
    throw new Error('usage: dns-query.ts udp|tcp|tcp-pipelined SERVER NAME...');
  let out: string[];
  if (mode === 'tcp-pipelined') {
    out = await pipelined(server, names);
  } else {
    const ask = mode === 'tcp' ? queryTcp : queryUdp;
    out = [];
    for (const [i, n] of names.entries()) {
      out.push(describeAnswer(n, await ask(server, 53, buildQuery(0x2000 + i, n), 5000)));
    }
  }
  process.stdout.write(`${out.join('\n')}\n`);
}
