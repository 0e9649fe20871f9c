import { agentCall } from '../sandbox/agent-client.js';
import { canResume } from '../container/lifecycle.js';
import { withContainer } from '../container/open.js';

/** `kapsel resume ID`: thaws a paused container, back to the status it was paused from. */
export async function resume(root: string, id: string): Promise<void> {
  await withContainer(root, id, canResume, async ({ store, record, agent }) => {
    await agentCall(agent.resumeContainer(id));
    record.status = record.pausedFrom ?? 'running';
    delete record.pausedFrom;
    await store.save(record);
  });
}
