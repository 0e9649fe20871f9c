import { setTimeout as sleep } from 'node:timers/promises';
import { formatRuncStats } from '../stats-format.js';
import type { AgentClient } from '../agent/client.js';
import { agentCall, monitorOf } from '../container.js';
import { RuntimeError } from '../errors.js';
import { canInspect } from '../lifecycle.js';
import { currentStatus, StateStore } from '../state.js';

/**
 * `kapsel events [--stats] [--interval 5s] ID`: JSON lines as runc prints
 * them: `{"type":"stats","id":...,"data":{...}}` every interval, and
 * `{"type":"oom","id":...}` as OOM kills happen. --stats prints one and exits.
 */
export async function events(
  root: string,
  id: string,
  statsOnce: boolean,
  interval: string,
): Promise<void> {
  const store = new StateStore(root);
  const record = await store.load(id);
  const refusal = canInspect(currentStatus(record));
  if (refusal !== undefined) throw new RuntimeError(refusal);
  const everyMs = parseInterval(interval);
  const agent = monitorOf(record);
  const sub = agent.events();
  try {
    if (statsOnce) {
      await printStats(agent, id);
      return;
    }
    void (async () => {
      for await (const e of sub.events) {
        if (e.containerId === id) print({ type: e.type, id });
      }
    })().catch(() => undefined);
    for (;;) {
      const r = await store.load(id).catch(() => undefined);
      if (r === undefined || currentStatus(r) === 'stopped') return;
      await printStats(agent, id);
      await sleep(everyMs);
    }
  } finally {
    sub.cancel();
    agent.close();
  }
}

async function printStats(agent: AgentClient, id: string): Promise<void> {
  const s = await agentCall(agent.statsContainer(id));
  process.stdout.write(`${formatRuncStats(id, s)}\n`);
}

function print(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

/** Go durations as runc takes them: 5s, 500ms, 1m. */
export function parseInterval(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s);
  if (m === null) throw new RuntimeError(`invalid --interval ${JSON.stringify(s)}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  const ms = Number(m[1]) * unit;
  if (ms <= 0) throw new RuntimeError('duration interval must be greater than 0');
  return ms;
}
