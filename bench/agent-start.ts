// The agent's start in the guest, by how node gets its code: the V8 code
// cache made with the image (the default), the CommonJS bundle compiled from
// source, and the ES module bundle that init ran before the cache
// (kapsel.agent_start=, read by agent/src/boot/code-cache.ts). Interleaved
// in one run, so machine load hits all alike; each row is the median.
//
//   npm run bench:agent-start [-- --runs N]
//
// --variant (repeatable) picks what to compare: cache, nocache, mjs, or
// flags:A,B (node flags added by init, kapsel.agent_flags=; the cache is
// then refused), or several joined by '+' (mjs+flags:--no-jitless: the
// start as it was before the cache and --jitless). The first is the
// baseline of the printed ratio. tb:N sets TCG's translation buffer (MiB);
// image:PATH boots another guest image file. `bare` starts node with the
// agent's flags and nothing but opening the port (bench/bare-node.ts: Node's
// own start, the floor of any Node agent), `bare:zlib:http2` after loading
// those built-in modules (what each costs in the guest).
//
// Columns: agent exec'd -> port open (guest timeline, ms), the agent's own
// uptime and CPU time when it serves (its "agent serving" log line), QEMU
// start -> Check answered, and each step of the agent's start (its
// startMs, agent/src/boot/marks.ts) as that step's own length.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { AgentClient } from '../runtime/src/sandbox/agent-client.js';
import { guestImage, type GuestImage } from '../runtime/src/sandbox/guest-image.js';
import { Vm } from '../runtime/src/sandbox/vm/index.js';
import { bareNodeKernelParam } from './bare-node.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    // cache | nocache | mjs | flags:A,B (node flags through kapsel.agent_flags=)
    variant: { type: 'string', multiple: true, default: ['cache', 'nocache', 'mjs'] },
  },
});
const runs = Number(values.runs);
const variants = values.variant;
const log = pino({ level: 'warn' });
const root = mkdtempSync(join(tmpdir(), 'kapsel-agent-start-'));
type Variant = string;
type Row = Record<string, number>;

/** `bare` or `bare:MODULES` (bare-node.ts). */
const isBare = (part: string): boolean => part === 'bare' || part.startsWith('bare:');

/** `a+b`: both; `flags:A,B` -> kapsel.agent_flags=A,B; mjs, nocache -> kapsel.agent_start=. */
function kernelParamsOf(variant: Variant): string[] {
  return variant
    .split('+')
    .filter((part) => part !== 'cache' && !part.startsWith('tb:') && !part.startsWith('image:'))
    .map((part) =>
      isBare(part)
        ? bareNodeKernelParam(part.split(':').slice(1))
        : part.startsWith('flags:')
          ? `kapsel.agent_flags=${part.slice('flags:'.length)}`
          : `kapsel.agent_start=${part}`,
    );
}

/** `tb:N`: TCG's translation buffer in MiB (vm/config.ts TCG_TB_MIB). */
function tbOf(variant: Variant): { tcgTbMiB?: number } {
  const part = variant.split('+').find((p) => p.startsWith('tb:'));
  return part === undefined ? {} : { tcgTbMiB: Number(part.slice('tb:'.length)) };
}

/** `image:PATH`: another guest image file in place of build/guest/image.erofs. */
function imageOf(variant: Variant): GuestImage {
  const image = guestImage();
  const part = variant.split('+').find((p) => p.startsWith('image:'));
  if (part === undefined) return image;
  const path = part.slice('image:'.length);
  return { ...image, image: { path, sizeBytes: statSync(path).size } };
}

async function bootOnce(i: number, variant: Variant): Promise<Row> {
  const image = imageOf(variant);
  const t0 = process.hrtime.bigint();
  const vm = await Vm.boot(
    {
      // QEMU's option syntax takes no ',' or '=' in a path: name by index.
      stateDir: mkdtempSync(join(root, `v${variants.indexOf(variant)}-${i}-`)),
      kernel: image.kernel,
      initrd: image.initrd,
      ...(image.image === undefined ? {} : { image: image.image }),
      memoryMiB: 1024,
      cpus: 1,
      kernelParams: kernelParamsOf(variant),
      ...tbOf(variant),
    },
    log,
  );
  try {
    await vm.waitAgentReady();
    if (variant.split('+').some(isBare)) {
      const t = vm.timeline.toJSON();
      return {
        'exec -> port open': (t['agentPortOpen'] ?? NaN) - (t['agentExec'] ?? NaN),
        'boot -> port open': Number(process.hrtime.bigint() - t0) / 1e6,
      };
    }
    const agent = AgentClient.forSocket(vm.agentSocketPath);
    await agent.check();
    const checked = Number(process.hrtime.bigint() - t0) / 1e6;
    const serving = await vm.console.waitFor(/agent serving on virtio-serial port/, {
      includeTail: true,
    });
    const facts = JSON.parse(serving.text.slice(serving.text.indexOf('{'))) as Record<
      string,
      unknown
    >;
    const t = vm.timeline.toJSON();
    // Steady state, which flags such as --jitless may slow down: 20 Checks.
    const c0 = process.hrtime.bigint();
    for (let k = 0; k < 20; k++) await agent.check();
    const checks = Number(process.hrtime.bigint() - c0) / 1e6;
    agent.close();
    return {
      'exec -> port open': (t['agentPortOpen'] ?? NaN) - (t['agentExec'] ?? NaN),
      'agent uptime at serving': Number(facts['uptimeMs']),
      'agent cpu at serving': Number(facts['cpuMs']),
      'boot -> Check answered': checked,
      'agent RSS MiB at serving': Number(facts['rssKiB']) / 1024,
      '20 more Checks': checks,
      ...startSteps(facts['startMs']),
      [`cache ${String(facts['codeCache'])}`]: 1,
    };
  } finally {
    await vm.shutdown(5000);
  }
}

/**
 * The agent's start marks (boot/marks.ts: ms since node began, at the end
 * of each step) as each step's own length, `step <name>`.
 */
function startSteps(marks: unknown): Row {
  if (typeof marks !== 'object' || marks === null) return {};
  const row: Row = {};
  let prev = 0;
  for (const [name, at] of Object.entries(marks as Record<string, unknown>)) {
    if (typeof at !== 'number') continue;
    row[`step ${name}`] = at - prev;
    prev = at;
  }
  return row;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

try {
  const rows = new Map<Variant, Row[]>(variants.map((v) => [v, []]));
  for (let i = 0; i < runs; i++) {
    for (const v of variants) rows.get(v)?.push(await bootOnce(i, v));
  }
  const first = variants[0] ?? '';
  const base = median((rows.get(first) ?? []).map((r) => r['exec -> port open'] ?? NaN));
  for (const v of variants) {
    const got = rows.get(v) ?? [];
    console.log(`\n${v} (median of ${got.length})`);
    const keys = [...new Set(got.flatMap((r) => Object.keys(r)))];
    for (const k of keys) {
      const xs = got.map((r) => r[k] ?? 0);
      console.log(
        `  ${k.padEnd(26)} ${k.startsWith('cache ') ? `${xs.reduce((a, b) => a + b, 0)}x` : median(xs).toFixed(0).padStart(7)}`,
      );
    }
    const own = median(got.map((r) => r['exec -> port open'] ?? NaN));
    console.log(`  exec -> port open / ${first}'s  ${(own / base).toFixed(2)}`);
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
