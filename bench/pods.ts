// Host memory of idle pods: N busybox containers started with `kapsel run -d`
// (each its own VM), then every host process of each pod (the sandbox
// monitor, its QEMU and virtiofsd, the container's shim) summed as PSS from
// /proc/PID/smaps, by kind (memoryOf). PSS splits a page shared by k
// processes into k parts, so what every VM maps from one file (QEMU's code, a
// DAX-mapped guest image) is counted once over all pods, which is what the
// host pays. Guest RAM is counted as the blocks of its tmpfs or memfd file
// instead: a clone's RAM file holds pages its guest has not touched since
// the restore, which are in no process's PSS (docs/light-sandboxes.md,
// third round).
//
// Baseline, measured in the same run: the floor VM, the same kernel with the
// same QEMU shape and RAM booting a trivial init that opens the agent port
// (bench/boot.ts's floor). The ratio says what kapsel's guest (Node agent,
// image, virtio-fs) and host processes add on top of a VM that does nothing;
// a ratio near 1 means the VMM and kernel are what is left to shrink.
//
// KAPSEL_SHARED_FS=virtio-9p measures 9p pods, whose clones map their
// template's RAM copy-on-write (counted as that mapping's PSS).
//
//   npm run bench:pods [-- --pods 10 --settle 15]
import { readdirSync, readFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { Spec } from '../oci/spec.js';
import { guestImage } from '../runtime/src/sandbox/guest-image.js';
import { vmDirOf, vmDirLayout } from '../runtime/src/sandbox/vm-dir.js';
import { Vm } from '../runtime/src/sandbox/vm/index.js';
import { DEFAULT_TEMPLATE_DIR, templateLayout } from '../runtime/src/sandbox/template/settings.js';
import { DEFAULT_SIZING } from '../runtime/src/sandbox/sizing.js';
import { packageRoot } from '../runtime/src/sys/package-root.js';
import { DEFAULT_BUNDLE, kapselToFiles } from '../test/support/kapsel-cli.js';
import { mappingPssKiB, ramFilesKiB } from './pss.js';

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '10' },
    // Seconds the pods idle before the reading: the guest finishes its start
    // and free page reporting hands back what it freed.
    settle: { type: 'string', default: '15' },
  },
});
const podCount = Number(values.pods);
const settleMs = Number(values.settle) * 1000;
const work = mkdtempSync(join(tmpdir(), 'kapsel-bench-pods-'));
const log = pino({ level: 'warn' });

interface Proc {
  pid: number;
  ppid: number;
  comm: string;
}

function processes(): Proc[] {
  const out: Proc[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const fields = stat.slice(close + 2).split(' ');
      out.push({
        pid: Number(e),
        ppid: Number(fields[1]),
        comm: stat.slice(stat.indexOf('(') + 1, close),
      });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** `pid` and every process below it. */
function tree(pid: number, all: Proc[]): Proc[] {
  const out = all.filter((p) => p.pid === pid);
  for (let i = 0; i < out.length; i++) {
    const parent = out[i]?.pid;
    out.push(...all.filter((p) => p.ppid === parent));
  }
  return out;
}

type Breakdown = Record<string, number>;

/**
 * Host memory in MiB of a set of processes, by kind, and its total: PSS of
 * each process, QEMU's split by mapping (mappingPssKiB), and guest RAM
 * counted as what its files hold (ramFilesKiB) in place of the PSS of
 * their mappings, once per file; a 9p clone's copy-on-write mapping of its
 * template's RAM (MappingPss.cowRam) counted as its PSS.
 */
function memoryOf(procs: { pid: number; kind: string }[]): Breakdown {
  const out: Breakdown = { total: 0 };
  const add = (kind: string, kib: number): void => {
    out[kind] = (out[kind] ?? 0) + kib / 1024;
    out['total'] = (out['total'] ?? 0) + kib / 1024;
  };
  const ram = new Map<string, number>();
  let ramMapped = 0;
  for (const p of procs) {
    const m = mappingPssKiB(p.pid);
    ramMapped += m.ram + m.cowRam;
    for (const [file, kib] of ramFilesKiB(p.pid)) ram.set(file, kib);
    if (m.cowRam > 0) ram.set(`cow:${String(p.pid)}`, m.cowRam);
    if (p.kind === 'qemu-system-x86') {
      add('qemu tcg', m.tcg);
      add('qemu anon', m.anon);
      add('qemu files', m.file);
    } else {
      add(p.kind, m.tcg + m.anon + m.file);
    }
  }
  add(
    'guest RAM',
    [...ram.values()].reduce((a, b) => a + b, 0),
  );
  // Not in the total: how much of the guest RAM the guest has touched
  // since QEMU mapped it (for a clone, since the restore).
  out['(ram mapped)'] = ramMapped / 1024;
  return out;
}

/** Host memory in MiB of one pod's host processes, by kind, and its total. */
function podMemory(root: string, id: string, all: Proc[]): Breakdown {
  const monitor = Number(readFileSync(vmDirLayout(vmDirOf(root, id)).pidFile, 'utf8'));
  const state = JSON.parse(readFileSync(join(root, id, 'state.json'), 'utf8')) as { pid: number };
  const procs = [...tree(monitor, all), ...tree(state.pid, all)];
  const out = memoryOf(
    procs.map((p) => ({
      pid: p.pid,
      kind: p.pid === monitor ? 'monitor' : p.pid === state.pid ? 'shim' : p.comm,
    })),
  );
  // A pod's guest RAM is always a file (shared for virtio-fs, the
  // template's for a 9p clone): none found means the accounting missed it,
  // and the figure would be too low.
  // Cold 9p guests have anonymous RAM, counted in qemu anon.
  const anonymousRam =
    process.env['KAPSEL_SHARED_FS'] === 'virtio-9p' &&
    /^(off|0)$/.test(process.env['KAPSEL_TEMPLATE'] ?? '');
  if (!(out['guest RAM'] ?? 0) && !anonymousRam)
    throw new Error(`pod ${id}: no guest RAM file found among its processes`);
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

function medianBreakdown(all: Breakdown[]): Breakdown {
  const keys = [...new Set(all.flatMap((b) => Object.keys(b)))];
  return Object.fromEntries(keys.map((k) => [k, median(all.map((b) => b[k] ?? 0))]));
}

function show(title: string, b: Breakdown): void {
  const parts = Object.entries(b)
    .filter(([k]) => k !== 'total')
    .sort((a, c) => c[1] - a[1])
    .map(([k, v]) => `${k} ${v.toFixed(1)}`)
    .join(', ');
  console.log(`${title.padEnd(34)} ${(b['total'] ?? NaN).toFixed(1).padStart(7)} MiB  (${parts})`);
}

/** Starts `n` idle pods under a fresh root, measures them, deletes them. */
async function pods(n: number, bundle: string): Promise<Breakdown> {
  const root = mkdtempSync(join(work, `root-${n}-`));
  const ids = Array.from({ length: n }, (_, i) => `pod${i}`);
  const started: string[] = [];
  try {
    for (const id of ids) {
      const r = await kapselToFiles(['--root', root, 'run', '-d', '-b', bundle, id], work);
      if (r.code !== 0) throw new Error(`kapsel run ${id} failed: ${r.stderr()}`);
      started.push(id);
    }
    await sleep(settleMs);
    const all = processes();
    const each = ids.map((id) => podMemory(root, id, all));
    return medianBreakdown(each);
  } finally {
    for (const id of started) {
      await kapselToFiles(['--root', root, 'delete', '-f', id], work);
    }
    rmSync(root, { recursive: true, force: true });
  }
}

/** The floor VM: same kernel and QEMU shape, trivial init, nothing else. */
async function floor(): Promise<Breakdown> {
  const stateDir = mkdtempSync(join(work, 'floor-'));
  const vm = await Vm.boot(
    {
      stateDir,
      kernel: guestImage().kernel,
      initrd: join(packageRoot(), 'build/guest/floor-initrd.img'),
      memoryMiB: DEFAULT_SIZING.baseMemoryMiB,
      cpus: 1,
      kernelParams: ['kapsel.floor=stay'],
    },
    log,
  );
  try {
    await vm.waitAgentReady();
    await vm.console.waitFor(/kapsel-floor: staying up/, { includeTail: true });
    await sleep(settleMs);
    return memoryOf([{ pid: vm.pid, kind: 'qemu-system-x86' }]);
  } finally {
    await vm.shutdown(0);
  }
}

/**
 * The templates the pods started from (template/settings.ts): each one's RAM
 * file, apparent and allocated, which every clone copies. It is on disk
 * (page cache, not counted above) unless the template directory is a tmpfs.
 */
function showTemplates(): void {
  if (/^(off|0)$/.test(process.env['KAPSEL_TEMPLATE'] ?? '')) return;
  const dir = process.env['KAPSEL_TEMPLATE_DIR'] ?? DEFAULT_TEMPLATE_DIR;
  let keys: string[];
  try {
    keys = readdirSync(dir).filter((k) => /^[0-9a-f]{16}$/.test(k));
  } catch {
    return;
  }
  for (const key of keys) {
    try {
      const st = statSync(templateLayout(dir, key).ram);
      console.log(
        `template ${key}: ram ${(st.size / 2 ** 20).toFixed(0)} MiB, ${((st.blocks * 512) / 2 ** 20).toFixed(1)} MiB allocated`,
      );
    } catch {
      // being replaced
    }
  }
}

try {
  const spec = JSON.parse(readFileSync(join(DEFAULT_BUNDLE, 'config.json'), 'utf8')) as Spec;
  spec.root = { path: join(DEFAULT_BUNDLE, 'rootfs'), readonly: true };
  if (spec.process === undefined) throw new Error(`${DEFAULT_BUNDLE}: no process in config.json`);
  spec.process.terminal = false;
  spec.process.args = ['sleep', '1000000'];
  const bundle = mkdtempSync(join(work, 'bundle-'));
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));

  const base = await floor();
  const one = await pods(1, bundle);
  const many = podCount > 1 ? await pods(podCount, bundle) : one;
  console.log(`\nhost PSS per pod (idle busybox, ${values.settle} s settled; MiB)`);
  show('floor VM (baseline)', base);
  show('1 pod', one);
  if (podCount > 1) show(`median of ${podCount} pods`, many);
  showTemplates();
  const ratio = (many['total'] ?? NaN) / (base['total'] ?? NaN);
  console.log(`\npod / floor VM = ${ratio.toFixed(2)}`);
  // What exists only under TCG: under KVM there is no translation buffer
  // (the table of translations in qemu anon goes too, not subtracted here).
  console.log(
    `per pod less the TCG translation buffer (none under KVM): ${((many['total'] ?? NaN) - (many['qemu tcg'] ?? 0)).toFixed(1)} MiB (goal < 100)`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
