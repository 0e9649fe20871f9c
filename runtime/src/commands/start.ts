import { readSpec } from '../container/bundle.js';
import { runHooks } from '../container/hooks.js';
import { canStart } from '../container/lifecycle.js';
import { withContainer } from '../container/open.js';
import { toOciState, type ContainerRecord } from '../container/state.js';
import type { Logger } from 'pino';
import { agentCall } from '../sandbox/agent-client.js';
import { logBootTimeline } from '../sandbox/boot-timeline.js';
import { killQuietly } from '../sys/pids.js';

/**
 * `kapsel start ID`: releases the created container's process. A failing
 * startContainer hook fails the start; a failing poststart hook kills the
 * container and fails it (runc's libcontainer does both).
 */
export async function start(root: string, id: string, log?: Logger): Promise<ContainerRecord> {
  return withContainer(root, id, canStart, async ({ store, record, agent }) => {
    const spec = await readSpec(record.bundle);
    await runHooks(spec?.hooks, 'startContainer', toOciState(record));
    await agentCall(agent.startContainer(id));
    if (log !== undefined) await logBootTimeline(record.vmDir, 'containerStarted', log);
    record.status = 'running';
    await store.save(record);
    try {
      await runHooks(spec?.hooks, 'poststart', toOciState(record));
    } catch (err) {
      await agent.signalProcess(id, 9, '', true).catch(() => undefined);
      if (record.pid !== process.pid) killQuietly(record.pid);
      throw err;
    }
    return record;
  });
}
