import { agentCall, monitorOf } from '../container.js';
import { RuntimeError } from '../errors.js';
import { canPause, canResume } from '../lifecycle.js';
import { currentStatus, StateStore } from '../state.js';

/** `kapsel pause ID`: freezes every process of the container (cgroup.freeze in the guest). */
export async function pause(root: string, id: string): Promise<void> {
  const store = new StateStore(root);
  const record = await store.load(id);
  const status = currentStatus(record);
  const refusal = canPause(status);
  if (refusal !== undefined) throw new RuntimeError(refusal);
  const agent = monitorOf(record);
  try {
    await agentCall(agent.pauseContainer(id));
  } finally {
    agent.close();
  }
  record.pausedFrom = status === 'created' ? 'created' : 'running';
  record.status = 'paused';
  await store.save(record);
}

/** `kapsel resume ID`: thaws a paused container. */
export async function resume(root: string, id: string): Promise<void> {
  const store = new StateStore(root);
  const record = await store.load(id);
  const refusal = canResume(currentStatus(record));
  if (refusal !== undefined) throw new RuntimeError(refusal);
  const agent = monitorOf(record);
  try {
    await agentCall(agent.resumeContainer(id));
  } finally {
    agent.close();
  }
  record.status = record.pausedFrom ?? 'running';
  delete record.pausedFrom;
  await store.save(record);
}
