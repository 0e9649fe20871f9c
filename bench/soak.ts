// Soak: many container lifecycles in one pod VM, two at a time, with many
// execs into the pod's container beside them, through bin/kapsel as an
// engine drives it. Prints the guest agent's, the sandbox process's and
// virtiofsd's own memory (RssAnon) and fd counts at the start and after
// each of `--readings` equal parts (each read after 3 s idle), every
// failure with the tail of the VM's console log, and each process's growth
// from start to end, the start being the baseline. Goal (issue 11): all
// succeed, flat (under 10% growth, no fd growth).
//
//   npm run bench:soak [-- --lifecycles N] [--execs M] [--warmup W] [--parallel P] [--readings R]
import { execFile, spawn } from 'node:child_process';
import {
  closeSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, promisify } from 'node:util';
import type { Spec, State } from '../oci/spec.js';
import { vmDirLayout, vmDirOf } from '../runtime/src/sandbox/vm-dir.js';
import { isAlive } from '../runtime/src/sys/pids.js';
import { DEFAULT_BUNDLE, KAPSEL } from '../test/support/kapsel-cli.js';
import { mkdirAllSync } from '../oci/fs/mkdir-all.js';
import { FINISHED_EXECS_KEPT } from '../agent/src/container.js';

const run = promisify(execFile);

const { values } = parseArgs({
  options: {
    lifecycles: { type: 'string', default: '2000' },
    execs: { type: 'string', default: '1000' },
    // Lifecycles run before "start" is read, so that code the agent and
    // the sandbox process compile on first use is not growth; execs too,
    // at least as many as the agent keeps ended (a bounded record that
    // fills, not a leak).
    warmup: { type: 'string', default: '20' },
    // Lifecycles at a time; the execs run beside them.
    parallel: { type: 'string', default: '2' },
    // Readings after the start one, evenly spread: growth that levels off
    // (a high-water mark) looks different from a leak.
    readings: { type: 'string', default: '4' },
  },
});
const lifecycles = Number(values.lifecycles);
const execs = Number(values.execs);
const warmup = Number(values.warmup);
const warmupExecs = Math.max(warmup, FINISHED_EXECS_KEPT);
const parallel = Number(values.parallel);
const readings = Number(values.readings);

const root = mkdtempSync(join(tmpdir(), 'kapsel-soak-'));
const work = mkdtempSync(join(tmpdir(), 'kapsel-soak-bundles-'));
const pod = 'soak-pod';
const TYPE = 'io.kubernetes.cri.container-type';
const SANDBOX = 'io.kubernetes.cri.sandbox-id';

function bundle(name: string, edit: (s: Spec) => void): string {
  const dir = join(work, name);
  const spec = JSON.parse(readFileSync(join(DEFAULT_BUNDLE, 'config.json'), 'utf8')) as Spec;
  spec.root = { path: join(DEFAULT_BUNDLE, 'rootfs'), readonly: true };
  edit(spec);
  mkdirAllSync(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
  return dir;
}

async function k(...args: string[]): Promise<string> {
  const { stdout } = await run(KAPSEL, ['--root', root, ...args], { maxBuffer: 1 << 20 });
  return stdout;
}

/**
 * `create` and `run -d`: their shim keeps the stdio it was given (as with
 * containerd's fifos), so it goes to a file, not to a pipe we would wait on.
 */
let detachedCalls = 0;

async function kDetached(...args: string[]): Promise<void> {
  // One file per call: lifecycles run side by side.
  const log = join(work, `detached-${++detachedCalls}.log`);
  const fd = openSync(log, 'w');
  const child = spawn(KAPSEL, ['--root', root, ...args], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', resolve);
  });
  if (code !== 0) {
    throw Object.assign(new Error(`kapsel ${args.join(' ')}: exit ${code}`), {
      stderr: readFileSync(log, 'utf8'),
    });
  }
}

/** How long the pod is left idle before each reading, ms. */
const SETTLE_MS = 3000;

interface Usage {
  rssKiB: number;
  fds: number;
}

/**
 * A process's own resident memory: RssAnon, what it allocated. Not VmRSS:
 * virtiofsd maps all of the guest's RAM (a shared memfd, vhost-user) and
 * its RSS grows with every guest page it has read into or written from
 * (RssShmem, the guest's pages, counted in QEMU); and a Node process's
 * RssFile (~40 MiB of the node binary, shared by every Node process) grows
 * as calls touch more of its code, which is not memory it holds either.
 */
function hostUsage(pid: number): Usage {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number =>
    Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  return {
    rssKiB: field('RssAnon'),
    fds: readdirSync(`/proc/${pid}/fd`).length,
  };
}

function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((p) => {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false;
      }
    });
}

/** The guest agent's RSS and fds, read from the pod container, which shares the guest's pid namespace. */
async function agentUsage(): Promise<Usage> {
  const out = await k(
    'exec',
    pod,
    'sh',
    '-c',
    // The agent: the node whose parent is the guest's init. (Reading every
    // process's cmdline can block on a kernel thread's; stat does not.)
    'for p in /proc/[0-9]*; do set -- $(cat $p/stat 2>/dev/null); if [ "$2" = "(node)" ] && [ "$4" = 1 ]; then grep RssAnon $p/status; ls $p/fd | wc -l; fi; done',
  );
  const m = /RssAnon:\s+(\d+) kB\s+(\d+)/.exec(out);
  return { rssKiB: Number(m?.[1] ?? NaN), fds: Number(m?.[2] ?? NaN) };
}

type Row = Record<'agent' | 'monitor' | 'virtiofsd', Usage>;

async function usage(label: string): Promise<Row> {
  // Measured idle, as a long-lived pod is: the agent collects and trims
  // after 2 s without requests (oci/process/idle-memory.ts).
  await sleep(SETTLE_MS);
  const layout = vmDirLayout(vmDirOf(root, pod));
  const monitor = Number(readFileSync(layout.pidFile, 'utf8'));
  const pids = JSON.parse(readFileSync(layout.pids, 'utf8')) as { name: string; pid: number }[];
  const vfsd = pids.find((p) => p.name === 'virtiofsd')?.pid ?? 0;
  const vfsdAll = [vfsd, ...childrenOf(vfsd)].map(hostUsage);
  // The host's first, while they are idle: reading the agent's is an exec,
  // calls through the sandbox process that would be read mid-burst (one
  // such reading said 28.1 MiB and 35 fds, the next ones 18.0 and 29).
  const sandboxProcess = hostUsage(monitor);
  const row = {
    agent: await agentUsage(),
    monitor: sandboxProcess,
    virtiofsd: {
      rssKiB: vfsdAll.reduce((a, u) => a + u.rssKiB, 0),
      fds: vfsdAll.reduce((a, u) => a + u.fds, 0),
    },
  };
  const line = Object.fromEntries(
    Object.entries(row).map(([k, u]) => [k, `${(u.rssKiB / 1024).toFixed(1)} MiB, ${u.fds} fds`]),
  );
  console.log(label, JSON.stringify(line));
  return row;
}

function consoleTail(): string {
  try {
    const lines = readFileSync(vmDirLayout(vmDirOf(root, pod)).console, 'utf8').split('\n');
    return lines.slice(-30).join('\n');
  } catch (err) {
    return `(no console log: ${String(err)})`;
  }
}

/**
 * Waits as an engine does, on the process `state` names (runc's init pid;
 * here the host process that stands for the container), not by asking
 * kapsel over and over: each `state` is a Node process that would take the
 * CPU from the guest under test.
 */
async function waitStopped(id: string): Promise<void> {
  const { pid } = JSON.parse(await k('state', id)) as State;
  while (isAlive(pid)) await sleep(50);
  for (;;) {
    const s = JSON.parse(await k('state', id)) as State;
    if (s.status === 'stopped') return;
    await sleep(200);
  }
}

/** One container's create, start, wait and delete, as an engine does them. */
async function lifecycle(id: string, appBundle: string): Promise<void> {
  await kDetached('create', '-b', appBundle, id);
  await k('start', id);
  await waitStopped(id);
  await k('delete', id);
}

/**
 * Lifecycles `life[0]..life[1]` on `parallel` workers, and execs
 * `exec[0]..exec[1]` into the pod's container beside them, as a pod's
 * containers come and go while its probes exec into it.
 */
async function batch(
  life: [number, number],
  exec: [number, number],
  appBundle: string,
  fail: (what: string, err: unknown) => void,
): Promise<void> {
  let next = life[0];
  const lifecycles = async (): Promise<void> => {
    for (let i = next++; i <= life[1]; i = next++) {
      const id = `soak-${i}`;
      try {
        await lifecycle(id, appBundle);
      } catch (err) {
        fail(`lifecycle ${i}`, err);
        await k('delete', '--force', id).catch(() => undefined);
      }
    }
  };
  const execs = async (): Promise<void> => {
    for (let i = exec[0]; i <= exec[1]; i++) {
      try {
        await k('exec', pod, 'true');
      } catch (err) {
        fail(`exec ${i}`, err);
      }
    }
  };
  await Promise.all([...Array.from({ length: parallel }, lifecycles), execs()]);
}

async function main(): Promise<void> {
  const podBundle = bundle('pod', (s) => {
    if (s.process === undefined) throw new Error('no process in the default bundle');
    s.process = { ...s.process, args: ['sleep', '1000000'] };
    // The guest's pid namespace, so the agent's /proc is readable from here.
    if (s.linux !== undefined) {
      s.linux.namespaces = (s.linux.namespaces ?? []).filter((n) => n.type !== 'pid');
      s.linux.maskedPaths = [];
    }
    s.annotations = { [TYPE]: 'sandbox', [SANDBOX]: pod };
  });
  const appBundle = bundle('app', (s) => {
    if (s.process === undefined) throw new Error('no process in the default bundle');
    s.process = { ...s.process, args: ['true'] };
    s.annotations = { [TYPE]: 'container', [SANDBOX]: pod };
  });
  await kDetached('run', '-d', '-b', podBundle, pod);
  const failures: string[] = [];
  const fail = (what: string, err: unknown): void => {
    const msg = `${what}: ${(err as { stderr?: string }).stderr ?? String(err)}`;
    failures.push(msg);
    console.log(`FAILED ${msg}\n--- console ---\n${consoleTail()}\n---`);
  };

  await usage('before warm-up:');
  for (let i = 1; i <= Math.max(warmup, warmupExecs); i++) {
    const id = `warm-${i}`;
    try {
      if (i <= warmup) await lifecycle(id, appBundle);
      if (i <= warmupExecs) await k('exec', pod, 'true');
    } catch (err) {
      fail(`warm-up ${i}`, err);
      await k('delete', '--force', id).catch(() => undefined);
    }
  }
  const start = await usage(`start (after ${warmup} warm-up lifecycles and ${warmupExecs} execs):`);
  let end = start;
  let ms = 0;
  for (let r = 1; r <= readings; r++) {
    const upTo = (n: number, i: number): number => Math.round((n * i) / readings);
    const t = Date.now();
    await batch(
      [upTo(lifecycles, r - 1) + 1, upTo(lifecycles, r)],
      [upTo(execs, r - 1) + 1, upTo(execs, r)],
      appBundle,
      fail,
    );
    ms += Date.now() - t;
    end = await usage(`after ${upTo(lifecycles, r)} lifecycles, ${upTo(execs, r)} execs:`);
  }
  for (const name of ['agent', 'monitor', 'virtiofsd'] as const) {
    const growth = (end[name].rssKiB / start[name].rssKiB - 1) * 100;
    const fds = end[name].fds - start[name].fds;
    const flat = growth < 10 && fds <= 0;
    console.log(
      `${name}: RssAnon ${growth >= 0 ? '+' : ''}${growth.toFixed(1)}%, fds ${fds >= 0 ? '+' : ''}${fds} from start to end: ${flat ? 'flat' : 'NOT flat'} (goal: under 10%, no fd growth)`,
    );
  }
  console.log(
    `${lifecycles} lifecycles (${parallel} at a time) and ${execs} execs beside them in ${(ms / 1000).toFixed(1)} s: ` +
      `${((lifecycles * 1000) / ms).toFixed(2)} lifecycles/s, ${((execs * 1000) / ms).toFixed(2)} execs/s`,
  );
  console.log(`${failures.length} failures`);
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(async () => {
    await run(KAPSEL, ['--root', root, 'delete', '--force', pod]).catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });
