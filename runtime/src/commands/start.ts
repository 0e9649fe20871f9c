import { agentCall, killQuietly, monitorOf, readSpec } from '../container.js';
import { RuntimeError } from '../errors.js';
import { runHooks } from '../hooks.js';
import { canStart } from '../lifecycle.js';
import { currentStatus, StateStore, toOciState, type ContainerRecord } from '../state.js';

/**
 * `kapsel start ID`: releases the created container's process. A failing
 * startContainer hook fails the start; a failing poststart hook kills the
 * container and fails it (runc's libcontainer does both).
 */
export async function start(root: string, id: string): Promise<ContainerRecord> {
  const store = new StateStore(root);
  const record = await store.load(id);
  const refusal = canStart(currentStatus(record));
  if (refusal !== undefined) throw new RuntimeError(refusal);
  const spec = await readSpec(record.bundle);
  await runHooks(spec?.hooks, 'startContainer', toOciState(record));
  const agent = monitorOf(record);
  try {
    await agentCall(agent.startContainer(id));
    record.status = 'running';
    await store.save(record);
    try {
      await runHooks(spec?.hooks, 'poststart', toOciState(record));
    } catch (err) {
      await agent.signalProcess(id, 9, '', true).catch(() => undefined);
      if (record.pid !== process.pid) killQuietly(record.pid);
      throw err;
    }
  } finally {
    agent.close();
  }
  return record;
}
