// The container engine alone: create + start + wait + delete of /bin/true,
// repeated, by kapsel's agent standalone on this host (driven over its unix
// socket, as the host runtime drives it over virtio-serial) against runc and
// crun running the same bundle (`<runtime> run`, which does the same four
// steps). Printed as ratios, since absolute times on these machines are noise.
//
// With --guest, the same comparison inside one guest too: a bench variant of
// the image (bench/guest/image.sh: runc, crun and bench/guest/bench-agent.ts
// in place of the agent) times the three engines on the guest kernel.
//
//   npm run bench:engine [-- --runs N] [--guest]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { Spec } from '../oci/spec.js';
import { AgentClient } from '../runtime/src/sandbox/agent-client.js';
import { guestImage } from '../runtime/src/sandbox/guest-image.js';
import { packageRoot } from '../runtime/src/sys/package-root.js';
import { Vm } from '../runtime/src/sandbox/vm/index.js';
import { StandaloneAgent } from '../test/support/agent-process.js';
import { makeBusyboxRootfs } from '../test/support/busybox.js';
import { testSpec } from '../test/support/spec.js';
import { mkdirAllSync } from '../oci/fs/mkdir-all.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '3' },
    // Internal: time `<runtime> run` in this process and print the times as JSON.
    loop: { type: 'string' },
    guest: { type: 'boolean', default: false },
    bundle: { type: 'string' },
  },
});
const runs = Number(values.runs);
const warmup = Number(values.warmup);

const since = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

interface Stats {
  median: number;
  mean: number;
  p90: number;
}

function stats(ms: number[]): Stats {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  return { median: at(0.5), mean: s.reduce((a, b) => a + b, 0) / s.length, p90: at(0.9) };
}

/** Same bundle for all three: busybox rootfs, /bin/true, runc spec's namespaces. */
function makeBundle(): { bundle: string; spec: Spec } {
  const bundle = mkdtempSync(join(tmpdir(), 'kapsel-bench-engine-'));
  const rootfs = makeBusyboxRootfs();
  renameSync(rootfs, join(bundle, 'rootfs'));
  // Debian 12's crun (1.8) refuses ociVersion 1.2; nothing here needs it.
  const spec = { ...testSpec(join(bundle, 'rootfs'), ['/bin/true'], 'bench'), ociVersion: '1.0.2' };
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
  return { bundle, spec };
}

async function benchKapsel(spec: Spec): Promise<number[]> {
  const agent = await StandaloneAgent.start();
  const client = AgentClient.forSocket(agent.socket);
  const json = JSON.stringify(spec);
  const times: number[] = [];
  try {
    for (let i = 0; i < warmup + runs; i++) {
      const id = `bench-${i}`;
      const t0 = process.hrtime.bigint();
      await client.createContainer({ containerId: id, ociSpecJson: json });
      await client.startContainer(id);
      const exit = await client.waitProcess(id);
      await client.removeContainer(id);
      const ms = since(t0);
      if (exit.exitCode !== 0) throw new Error(`kapsel: /bin/true exited ${exit.exitCode}`);
      if (i >= warmup) times.push(ms);
    }
  } finally {
    client.close();
    await agent.stop();
  }
  return times;
}

function ociLoop(runtime: string, bundle: string): number[] | string {
  const root = mkdtempSync(join(tmpdir(), `kapsel-bench-${runtime}-`));
  const times: number[] = [];
  try {
    for (let i = 0; i < warmup + runs; i++) {
      const t0 = process.hrtime.bigint();
      const r = spawnSync(
        runtime,
        ['--root', root, 'run', '--bundle', bundle, `bench-${runtime}-${i}`],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
          encoding: 'utf8',
        },
      );
      const ms = since(t0);
      if (r.status !== 0) return `failed: ${runtime} run exited ${r.status}: ${r.stderr.trim()}`;
      if (i >= warmup) times.push(ms);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return times;
}

/**
 * crun 1.8 refuses a host that mounts cgroup v1 and v2 side by side (this
 * one does), even with --cgroup-manager=disabled; in a mount namespace of
 * its own with a plain cgroup2 at /sys/fs/cgroup it runs (with no
 * controllers enabled there, so it makes no limits, like kapsel here).
 */
const PURE_CGROUP2 =
  'umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec "$@"';

function benchOci(runtime: string, bundle: string, pureCgroup2: boolean): number[] | string {
  const probe = spawnSync(runtime, ['--version'], { encoding: 'utf8' });
  if (probe.error !== undefined)
    return `skipped: ${runtime} not installed (apt-get install -y ${runtime})`;
  const self = [process.execPath, '--import', 'tsx', import.meta.filename];
  const args = [
    '--loop',
    runtime,
    '--bundle',
    bundle,
    '--runs',
    String(runs),
    '--warmup',
    String(warmup),
  ];
  const r = pureCgroup2
    ? spawnSync(
        'unshare',
        ['-m', '--propagation', 'private', 'sh', '-c', PURE_CGROUP2, 'sh', ...self, ...args],
        { encoding: 'utf8' },
      )
    : spawnSync(self[0] ?? 'node', [...self.slice(1), ...args], { encoding: 'utf8' });
  if (r.status !== 0) return `failed: ${r.stderr.trim() || `exit ${r.status}`}`;
  return JSON.parse(r.stdout) as number[] | string;
}

const fmt = (v: number): string => v.toFixed(1).padStart(8);

type Results = [string, number[] | string][];

function report(where: string, results: Results): void {
  console.log(
    `${where}: create+start+wait+delete of /bin/true, ${runs} runs after ${warmup} warm-up (ms)`,
  );
  console.log(
    `${'engine'.padEnd(28)}${'median'.padStart(8)}${'mean'.padStart(8)}${'p90'.padStart(8)}`,
  );
  const kapsel = results[0]?.[1];
  const kStats = Array.isArray(kapsel) ? stats(kapsel) : undefined;
  for (const [name, r] of results) {
    if (typeof r === 'string') {
      console.log(`${name.padEnd(28)}${r}`);
      continue;
    }
    const s = stats(r);
    console.log(`${name.padEnd(28)}${fmt(s.median)}${fmt(s.mean)}${fmt(s.p90)}`);
  }
  for (const [name, r] of results.slice(1)) {
    if (typeof r === 'string' || kStats === undefined) continue;
    const s = stats(r);
    console.log(
      `${where} ratio kapsel / ${name.split(' ')[0] ?? name}: median ${(kStats.median / s.median).toFixed(2)}, mean ${(kStats.mean / s.mean).toFixed(2)}`,
    );
  }
}

/** One VM of the bench image; its bench program prints one KAPSEL-BENCH line. */
async function benchGuest(spec: Spec): Promise<Results> {
  const out = join(packageRoot(), 'build', 'guest-bench');
  mkdirAllSync(out);
  writeFileSync(join(out, 'config.json'), JSON.stringify({ ...spec, root: { path: 'rootfs' } }));
  const built = spawnSync(join(packageRoot(), 'bench/guest/image.sh'), { stdio: 'inherit' });
  if (built.status !== 0)
    return [['guest image', `failed: bench/guest/image.sh exited ${built.status}`]];
  const stateDir = mkdtempSync(join(tmpdir(), 'kapsel-bench-guest-'));
  const vm = await Vm.boot(
    {
      stateDir,
      kernel: guestImage().kernel,
      initrd: join(out, 'initrd.img'),
      memoryMiB: 1024,
      cpus: 1,
      kernelParams: [`kapsel.bench_runs=${runs}`],
    },
    pino({ level: 'warn' }),
  );
  try {
    const line = await vm.console.waitFor(/KAPSEL-BENCH /, { includeTail: true });
    const r = JSON.parse(line.text.slice(line.text.indexOf('{'))) as {
      kapsel?: number[];
      runc?: number[] | string;
      crun?: number[] | string;
      error?: string;
    };
    if (r.error !== undefined) return [['guest bench', `failed: ${r.error}`]];
    return [
      ['kapsel (libkapsel, no gRPC)', r.kapsel ?? 'missing'],
      ['runc run', r.runc ?? 'missing'],
      ['crun run', r.crun ?? 'missing'],
    ];
  } finally {
    await vm.shutdown(5000);
    rmSync(stateDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:engine needs root');
  const { bundle, spec } = makeBundle();
  try {
    const results: [string, number[] | string][] = [
      ['kapsel (agent standalone)', await benchKapsel(spec)],
      ['runc run', benchOci('runc', bundle, false)],
      ['crun run (cgroup2 view)', benchOci('crun', bundle, true)],
    ];
    report('host', results);
    if (values.guest) report('guest', await benchGuest(spec));
  } finally {
    rmSync(bundle, { recursive: true, force: true });
  }
}

if (values.loop !== undefined) {
  console.log(JSON.stringify(ociLoop(values.loop, values.bundle ?? '')));
} else {
  await main();
}
