// Pods through Kubernetes' path, containerd's CRI plugin, as kubelet starts
// them (test/support/cri.ts: a private containerd in a network namespace of
// its own, CNI bridge networking), runtime handlers runc and kapsel
// (io.containerd.kapsel.v2) in the same run. Figures per pod: RunPodSandbox
// time, the time from RunPodSandbox to the container's first line in its CRI
// log file, and the host PSS of the pod's shim and everything under it once
// it idles; then kapsel's ratios to runc's. (Absolute times on these shared
// TCG machines are noise; compare within a run.)
//
//   node --import tsx bench/cri-pods.ts [--rounds N]
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { SHIM_IMAGE } from '../test/support/containerd.js';
import { CRI_NS, CriNode } from '../test/support/cri.js';
import { shimTreePssMiB } from './pss.js';
import { mkdirAllSync } from '../oci/fs/mkdir-all.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '1' } } });
const rounds = Number(values.rounds);
const HANDLERS = ['runc', 'kapsel'];

const round1 = (x: number): number => Math.round(x * 10) / 10;

const node = await CriNode.start();
const results: { handler: string; startMs: number; firstLineMs: number; pssMiB: number }[] = [];
try {
  await node.containerd.importImage(CRI_NS, SHIM_IMAGE);
  for (let round = 0; round < rounds; round++) {
    for (const handler of HANDLERS) {
      const name = `bench-${round}-${handler}`;
      const logDir = join(node.dir, 'pods', name);
      mkdirAllSync(logDir);
      const sandboxConfig = {
        metadata: { name, uid: name, namespace: 'bench', attempt: 0 },
        hostname: name,
        logDirectory: logDir,
      };
      const t0 = performance.now();
      const pod = await node.cri.runPodSandbox({ config: sandboxConfig, runtimeHandler: handler });
      const startMs = performance.now() - t0;
      try {
        const id = await node.cri.createContainer({
          podSandboxId: pod,
          sandboxConfig,
          config: {
            metadata: { name: 'app' },
            image: { image: SHIM_IMAGE },
            command: ['sh', '-c', 'echo ready; exec sleep 100000'],
            logPath: 'app.log',
          },
        });
        await node.cri.startContainer(id);
        const log = join(logDir, 'app.log');
        while (!(existsSync(log) && readFileSync(log, 'utf8').includes(' ready'))) {
          await sleep(20);
        }
        const firstLineMs = performance.now() - t0;
        await sleep(3000);
        const pss = shimTreePssMiB(node.dir);
        const total = Object.values(pss).reduce((a, b) => a + b, 0);
        results.push({ handler, startMs, firstLineMs, pssMiB: total });
        console.log(
          JSON.stringify({
            handler,
            runPodSandboxMs: Math.round(startMs),
            firstLogLineMs: Math.round(firstLineMs),
            pssMiB: round1(total),
            byProcess: Object.fromEntries(Object.entries(pss).map(([k, v]) => [k, round1(v)])),
          }),
        );
      } finally {
        await node.cri.stopPodSandbox(pod);
        await node.cri.removePodSandbox(pod);
      }
    }
  }
  const mean = (h: string, k: 'startMs' | 'firstLineMs' | 'pssMiB'): number => {
    const xs = results.filter((r) => r.handler === h).map((r) => r[k]);
    return xs.reduce((a, b) => a + b, 0) / xs.length;
  };
  console.log(
    JSON.stringify({
      ratiosKapselToRunc: {
        runPodSandbox: round1(mean('kapsel', 'startMs') / mean('runc', 'startMs')),
        firstLogLine: round1(mean('kapsel', 'firstLineMs') / mean('runc', 'firstLineMs')),
        pss: round1(mean('kapsel', 'pssMiB') / mean('runc', 'pssMiB')),
      },
    }),
  );
} finally {
  await node.stop();
}
