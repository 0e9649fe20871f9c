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
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { SHIM_IMAGE } from '../test/support/containerd.js';
import { CRI_NS, CriNode } from '../test/support/cri.js';
import { pssKiB } from './pss.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '1' } } });
const rounds = Number(values.rounds);
const HANDLERS = ['runc', 'kapsel'];

/** pid → parent pid and command line, for every process now. */
function processes(): Map<number, { ppid: number; cmd: string }> {
  const out = new Map<number, { ppid: number; cmd: string }>();
  for (const e of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').replaceAll('\0', ' ');
      out.set(Number(e), { ppid, cmd });
    } catch {
      // gone
    }
  }
  return out;
}

/** PSS (MiB) of the node's shims and all their descendants, by program name. */
function podPss(node: CriNode): Record<string, number> {
  const procs = processes();
  const all = new Set(
    [...procs]
      .filter(([, p]) => p.cmd.includes('containerd-shim') && p.cmd.includes(node.dir))
      .map(([pid]) => pid),
  );
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, p] of procs) {
      if (!all.has(pid) && all.has(p.ppid)) {
        all.add(pid);
        grew = true;
      }
    }
  }
  const by: Record<string, number> = {};
  for (const pid of all) {
    const cmd = procs.get(pid)?.cmd ?? '';
    const name = cmd.includes('containerd-shim-kapsel-v2')
      ? 'kapsel shim v2'
      : cmd.includes('containerd-shim-runc')
        ? 'runc shim'
        : (cmd.split(' ')[0]?.split('/').pop() ?? '?');
    by[name] = (by[name] ?? 0) + pssKiB(pid) / 1024;
  }
  return by;
}

const round1 = (x: number): number => Math.round(x * 10) / 10;

const node = await CriNode.start();
const results: { handler: string; startMs: number; firstLineMs: number; pssMiB: number }[] = [];
try {
  await node.containerd.importImage(CRI_NS, SHIM_IMAGE);
  for (let round = 0; round < rounds; round++) {
    for (const handler of HANDLERS) {
      const name = `bench-${round}-${handler}`;
      const logDir = join(node.dir, 'pods', name);
      mkdirSync(logDir, { recursive: true });
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
        const pss = podPss(node);
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
