// Network throughput (container -> peer) and request latency (peer -> container) between a container and a peer
// namespace, kapsel against runc in the same run (absolute numbers on these
// shared TCG machines are noise; the ratio is the figure).
//
// Both runtimes get the same bundle and the same engine-made namespace (by
// path, as CNI hands it over), joined to the peer by a veth: runc's container
// sits in it directly, kapsel's VM mirrors it through a tap and virtio-net.
//
//   node --import tsx bench/net.ts [--megabytes N] [--requests N]
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { RUNC } from '../test/support/engines.js';
import { KAPSEL, makeBundle, removeBundles } from '../test/support/kapsel-cli.js';
import { TestNetns } from '../test/support/netns.js';

const { values } = parseArgs({
  options: {
    megabytes: { type: 'string', default: '200' },
    requests: { type: 'string', default: '1000' },
  },
});
const megabytes = Number(values.megabytes);
const requests = Number(values.requests);
const IP = '10.252.0.2';

/** Runs in the peer namespace: reads one TCP stream of N MiB, then makes N sequential GETs; prints JSON. */
const PEER = `
const net = require('node:net'), http = require('node:http');
const [ip, mb, n] = process.argv.slice(1);
const wait = (ms) => new Promise((r) => setTimeout(r, ms));
async function stream() {
  for (;;) {
    try {
      return await new Promise((resolve, reject) => {
        const s = net.connect(5001, ip);
        let bytes = 0, t0 = 0n;
        s.once('error', reject);
        s.once('connect', () => { t0 = process.hrtime.bigint(); });
        s.on('data', (d) => { bytes += d.length; });
        s.once('end', () => {
          const ms = Number(process.hrtime.bigint() - t0) / 1e6;
          if (bytes !== Number(mb) * 1048576) reject(new Error('short stream: ' + bytes));
          else resolve(ms);
        });
      });
    } catch { await wait(200); }
  }
}
function get() {
  return new Promise((resolve, reject) => {
    http.get({ host: ip, port: 80, path: '/i', agent: false }, (res) => {
      res.resume(); res.on('end', resolve);
    }).on('error', reject);
  });
}
(async () => {
  for (;;) { try { await get(); break; } catch { await wait(200); } }
  const streamMs = await stream();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < Number(n); i++) await get();
  const getMs = Number(process.hrtime.bigint() - t0) / 1e6;
  console.log(JSON.stringify({ streamMs, getMs }));
})();
`;

const container = TestNetns.create('kbc');
const peer = TestNetns.create('kbp');
const root = mkdtempSync('/tmp/kbench-');
try {
  peer.link(container, 'peer0', '10.252.0.1/24', 'eth0', `${IP}/24`);
  const bundle = makeBundle((s) => {
    if (s.process === undefined) throw new Error('default spec has no process');
    s.process = {
      ...s.process,
      terminal: false,
      args: [
        'sh',
        '-c',
        `echo ok > /tmp/i && httpd -p 80 -h /tmp && while :; do head -c ${megabytes * 1048576} /dev/zero | nc -l -p 5001; done`,
      ],
    };
    s.mounts = [...(s.mounts ?? []), { destination: '/tmp', type: 'tmpfs', source: 'tmpfs' }];
    s.linux = {
      ...s.linux,
      namespaces: [
        ...(s.linux?.namespaces ?? []).filter((n) => n.type !== 'network'),
        { type: 'network', path: container.path },
      ],
    };
  });
  const results: Record<string, { streamMs: number; getMs: number }> = {};
  for (const [name, binary] of [
    ['runc', RUNC],
    ['kapsel', KAPSEL],
  ] as const) {
    const state = join(root, name);
    execFileSync(binary, ['--root', state, 'run', '-d', '--bundle', bundle, 'bench'], {
      stdio: 'ignore',
    });
    try {
      const out = await new Promise<string>((resolve, reject) => {
        const p = spawn(
          'nsenter',
          [
            `--net=${peer.path}`,
            '--',
            process.execPath,
            '-e',
            PEER,
            IP,
            String(megabytes),
            String(requests),
          ],
          { stdio: ['ignore', 'pipe', 'inherit'] },
        );
        let s = '';
        p.stdout.on('data', (d: Buffer) => (s += d.toString()));
        p.on('error', reject);
        p.on('close', () => {
          resolve(s);
        });
      });
      results[name] = JSON.parse(out) as { streamMs: number; getMs: number };
    } finally {
      execFileSync(binary, ['--root', state, 'delete', '--force', 'bench'], { stdio: 'ignore' });
    }
  }
  const r = results['runc'];
  const k = results['kapsel'];
  if (r === undefined || k === undefined) throw new Error('a runtime gave no result');
  const mbps = (x: { streamMs: number }): number => megabytes / (x.streamMs / 1000);
  console.log(`TCP stream of ${megabytes} MiB, container -> peer:`);
  console.log(`  runc    ${mbps(r).toFixed(1)} MiB/s`);
  console.log(`  kapsel  ${mbps(k).toFixed(1)} MiB/s`);
  console.log(`  kapsel/runc throughput  ${(mbps(k) / mbps(r)).toFixed(3)}`);
  console.log(`${requests} sequential HTTP GETs (new connection each):`);
  console.log(`  runc    ${(r.getMs / requests).toFixed(2)} ms per request`);
  console.log(`  kapsel  ${(k.getMs / requests).toFixed(2)} ms per request`);
  console.log(`  kapsel/runc latency  ${(k.getMs / r.getMs).toFixed(1)}x`);
} finally {
  removeBundles();
  rmSync(root, { recursive: true, force: true });
  peer.remove();
  container.remove();
}
