import { agentCall } from '../sandbox/agent-client.js';
import { canPause } from '../container/lifecycle.js';
import { withContainer } from '../container/open.js';

/** `kapsel pause ID`: freezes every process of the container (cgroup.freeze in the guest). */
export async function pause(root: string, id: string): Promise<void> {
  await withContainer(root, id, canPause, async ({ store, record, status, agent }) => {
    await agentCall(agent.pauseContainer(id));
    record.pausedFrom = status === 'created' ? 'created' : 'running';
    record.status = 'paused';
    await store.save(record);
  });
}
