// Runs in the bench variant of the guest image in place of the agent
// (bench/guest/image.sh puts it at /opt/kapsel/agent.mjs): times
// create+start+wait+delete of /bin/true by kapsel's engine (libkapsel, as the
// agent calls it, without the gRPC hop), `runc run` and `crun run`, on the
// same bundle inside the guest, prints one KAPSEL-BENCH line of JSON on the
// console and exits (PID 1 then powers the VM off).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadNative } from '../../agent/src/native/index.js';
import { parseSpec, toSpawnRequest } from '../../agent/src/spec/translate.js';
import { mkdirAllSync } from '../../oci/fs/mkdir-all.js';

const BUNDLE = '/bench/bundle';
const CGROUP = '/sys/fs/cgroup';
const runs = Number(process.env['KAPSEL_BENCH_RUNS'] ?? '20');
const warmup = 3;

const since = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

async function kapsel(): Promise<number[]> {
  const native = loadNative();
  const spec = parseSpec(readFileSync(join(BUNDLE, 'config.json'), 'utf8'));
  spec.root = { path: join(BUNDLE, 'rootfs') };
  const { request } = toSpawnRequest(spec);
  const times: number[] = [];
  for (let i = 0; i < warmup + runs; i++) {
    const t0 = process.hrtime.bigint();
    const p = await native.spawn(request);
    p.stdout.resume();
    p.stderr.resume();
    p.stdin.end();
    await p.start();
    const exit = await p.exited;
    const ms = since(t0);
    if (exit.exitCode !== 0) throw new Error(`kapsel: exit ${exit.exitCode}`);
    if (i >= warmup) times.push(ms);
  }
  return times;
}

function oci(runtime: string): number[] | string {
  if (!existsSync(runtime)) return `skipped: ${runtime} not in the image`;
  const root = mkdtempSync('/run/bench-');
  const times: number[] = [];
  try {
    for (let i = 0; i < warmup + runs; i++) {
      const t0 = process.hrtime.bigint();
      const r = spawnSync(runtime, ['--root', root, 'run', '--bundle', BUNDLE, `b${i}`], {
        stdio: ['ignore', 'ignore', 'pipe'],
        encoding: 'utf8',
      });
      const ms = since(t0);
      if (r.status !== 0) return `failed: ${runtime} exited ${r.status}: ${r.stderr.trim()}`;
      if (i >= warmup) times.push(ms);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return times;
}

async function main(): Promise<void> {
  // runc and crun need the cgroup2 hierarchy the agent would mount.
  if (!existsSync(join(CGROUP, 'cgroup.controllers'))) {
    mkdirAllSync(CGROUP);
    await loadNative().mount('cgroup2', CGROUP, 'cgroup2', 0, '');
  }
  const result = {
    kapsel: await kapsel(),
    runc: oci('/usr/sbin/runc'),
    crun: oci('/usr/bin/crun'),
  };
  console.log(`KAPSEL-BENCH ${JSON.stringify(result)}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.log(`KAPSEL-BENCH ${JSON.stringify({ error: String(err) })}`);
    process.exit(1);
  },
);
