// The agent's start in the guest, by how node gets its code: the V8 code
// cache made with the image (the default), the CommonJS bundle compiled from
// source, and the ES module bundle that init ran before the cache
// (kapsel.agent_start=, read by agent/src/boot/code-cache.ts). Interleaved
// in one run, so machine load hits all alike; each row is the median.
//
//   npm run bench:agent-start [-- --runs N]
//
// Columns: agent exec'd -> port open (guest timeline, ms), the agent's own
// uptime and CPU time when it serves (its "agent serving" log line), and
// QEMU start -> Check answered.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { AgentClient } from '../runtime/src/sandbox/agent-client.js';
import { guestImage } from '../runtime/src/sandbox/guest-image.js';
import { Vm } from '../runtime/src/sandbox/vm/index.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' } } });
const runs = Number(values.runs);
const log = pino({ level: 'warn' });
const root = mkdtempSync(join(tmpdir(), 'kapsel-agent-start-'));
const variants = ['cache', 'nocache', 'mjs'] as const;
type Variant = (typeof variants)[number];
type Row = Record<string, number>;

async function bootOnce(i: number, variant: Variant): Promise<Row> {
  const image = guestImage();
  const t0 = process.hrtime.bigint();
  const vm = await Vm.boot(
    {
      stateDir: mkdtempSync(join(root, `${variant}-${i}-`)),
      kernel: image.kernel,
      initrd: image.initrd,
      ...(image.image === undefined ? {} : { image: image.image }),
      memoryMiB: 1024,
      cpus: 1,
      kernelParams: variant === 'cache' ? [] : [`kapsel.agent_start=${variant}`],
    },
    log,
  );
  try {
    await vm.waitAgentReady();
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
    agent.close();
    return {
      'exec -> port open': (t['agentPortOpen'] ?? NaN) - (t['agentExec'] ?? NaN),
      'agent uptime at serving': Number(facts['uptimeMs']),
      'agent cpu at serving': Number(facts['cpuMs']),
      'boot -> Check answered': checked,
      [`cache ${String(facts['codeCache'])}`]: 1,
    };
  } finally {
    await vm.shutdown(5000);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

try {
  const rows: Record<Variant, Row[]> = { cache: [], nocache: [], mjs: [] };
  for (let i = 0; i < runs; i++) for (const v of variants) rows[v].push(await bootOnce(i, v));
  const base = median(rows.mjs.map((r) => r['exec -> port open'] ?? NaN));
  for (const v of variants) {
    console.log(`\n${v} (median of ${rows[v].length})`);
    const keys = [...new Set(rows[v].flatMap((r) => Object.keys(r)))];
    for (const k of keys) {
      const xs = rows[v].map((r) => r[k] ?? 0);
      console.log(
        `  ${k.padEnd(26)} ${k.startsWith('cache ') ? `${xs.reduce((a, b) => a + b, 0)}x` : median(xs).toFixed(0).padStart(7)}`,
      );
    }
    const own = median(rows[v].map((r) => r['exec -> port open'] ?? NaN));
    console.log(`  exec -> port open / mjs's  ${(own / base).toFixed(2)}`);
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
