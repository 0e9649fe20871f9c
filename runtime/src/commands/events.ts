import { setTimeout as sleep } from 'node:timers/promises';
import { parseInterval } from '../args/duration.js';
import { canInspect } from '../container/lifecycle.js';
import { withContainer } from '../container/open.js';
import { currentStatus } from '../container/state.js';
import { formatRuncStats } from '../container/stats-format.js';
import { agentCall, type AgentClient } from '../sandbox/agent-client.js';

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
  await withContainer(root, id, canInspect, async ({ store, agent }) => {
    const everyMs = parseInterval(interval);
    if (statsOnce) {
      await printStats(agent, id);
      return;
    }
    const sub = agent.events();
    try {
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
    }
  });
}

async function printStats(agent: AgentClient, id: string): Promise<void> {
  const s = await agentCall(agent.statsContainer(id));
  process.stdout.write(`${formatRuncStats(id, s)}\n`);
}

function print(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}
