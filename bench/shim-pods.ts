// Host cost of one pod through containerd, three ways in the same run: runc
// (runc's shim), kapsel behind runc's shim (`--runc-binary bin/kapsel`: the
// shim, kapsel's sandbox process and per-process shim, QEMU, virtiofsd) and
// kapsel's own shim v2 (`io.containerd.kapsel.v2`: one process of ours owning
// QEMU and virtiofsd). Figures: time from `ctr run` to the container's first
// output, and the PSS of the shim and everything under it once it idles.
// (Absolute times on these shared TCG machines are noise; compare within a run.)
//
//   node --import tsx bench/shim-pods.ts [--rounds N]
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { CTR, RUNC } from '../test/support/engines.js';
import { PrivateContainerd, SHIM_IMAGE } from '../test/support/containerd.js';
import { KAPSEL } from '../test/support/kapsel-cli.js';
import { shimTreePssMiB } from './pss.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '1' } } });
const rounds = Number(values.rounds);

const WAYS: [string, string[]][] = [
  ['runc', ['--runtime', 'io.containerd.runc.v2', '--runc-binary', RUNC]],
  ['kapsel (runc shim)', ['--runtime', 'io.containerd.runc.v2', '--runc-binary', KAPSEL]],
  ['kapsel (shim v2)', ['--runtime', 'io.containerd.kapsel.v2']],
];

const c = await PrivateContainerd.start();
try {
  await c.importBusybox();
  for (let round = 0; round < rounds; round++) {
    for (const [name, flags] of WAYS) {
      const id = `bench-${round}-${name.replace(/\W+/g, '-').replace(/-+$/, '')}`;
      const t0 = performance.now();
      const ctr = spawn(
        CTR,
        [
          '-a',
          c.address,
          '-n',
          'kapsel-test',
          'run',
          '--rm',
          ...flags,
          SHIM_IMAGE,
          id,
          'sh',
          '-c',
          'echo ready; exec sleep 100000',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let errText = '';
      ctr.stderr.on('data', (d: Buffer) => (errText += d.toString()));
      const firstOutput = await new Promise<number>((resolve, reject) => {
        ctr.stdout.once('data', () => {
          resolve(performance.now() - t0);
        });
        ctr.once('exit', () => {
          reject(new Error(`${name}: ctr run ended: ${errText}`));
        });
      });
      await sleep(3000);
      const pss = shimTreePssMiB(c.dir);
      const total = Object.values(pss).reduce((a, b) => a + b, 0);
      const exited = new Promise((resolve) => ctr.once('exit', resolve));
      await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
      await exited;
      console.log(
        JSON.stringify({
          way: name,
          firstOutputMs: Math.round(firstOutput),
          pssMiB: Math.round(total * 10) / 10,
          byProcess: Object.fromEntries(
            Object.entries(pss).map(([k, v]) => [k, Math.round(v * 10) / 10]),
          ),
        }),
      );
    }
  }
} finally {
  await c.stop();
}
