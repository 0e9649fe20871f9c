// `docker run --rm IMAGE true` with kapsel against runc, in the same run and
// against the same private dockerd, reported as a ratio (absolute times on
// these shared TCG machines are noise).
//
//   node --import tsx bench/docker.ts [--runs N]
import { parseArgs } from 'node:util';
import { DockerDaemon, IMAGE } from '../test/support/engines.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' } } });
const runs = Number(values.runs);

const d = await DockerDaemon.start();
try {
  await d.importImage();
  const times: Record<string, number[]> = { runc: [], kapsel: [] };
  // Interleaved, so drift in the machine's load hits both alike.
  for (let i = 0; i < runs; i++) {
    for (const runtime of ['runc', 'kapsel']) {
      const t0 = process.hrtime.bigint();
      const r = await d.docker([
        'run',
        '--rm',
        '--network',
        'none',
        '--runtime',
        runtime,
        IMAGE,
        'true',
      ]);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r.code !== 0) throw new Error(`${runtime}: ${r.stderr}`);
      times[runtime]?.push(ms);
    }
  }
  const median = (xs: number[]): number =>
    [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  const runc = median(times['runc'] ?? []);
  const kapsel = median(times['kapsel'] ?? []);
  console.log(`docker run --rm ${IMAGE} true, median of ${runs}:`);
  console.log(`  runc    ${runc.toFixed(0)} ms`);
  console.log(`  kapsel  ${kapsel.toFixed(0)} ms`);
  console.log(`  ratio   ${(kapsel / runc).toFixed(1)}x`);
} finally {
  await d.stop();
}
