import { agentCall, monitorOf } from '../container.js';
import { RuntimeError } from '../errors.js';
import { canInspect } from '../lifecycle.js';
import { currentStatus, StateStore } from '../state.js';

/**
 * `kapsel ps [--format table|json] ID`: the container's processes, as pids
 * of the guest (there is no host process to show: they live in the VM).
 */
export async function ps(root: string, id: string, format: string): Promise<void> {
  const record = await new StateStore(root).load(id);
  const refusal = canInspect(currentStatus(record));
  if (refusal !== undefined) throw new RuntimeError(refusal);
  const agent = monitorOf(record);
  try {
    const pids = await agentCall(agent.listProcesses(id));
    if (format === 'json') process.stdout.write(`${JSON.stringify(pids)}\n`);
    else process.stdout.write(`PID\n${pids.map((p) => `${p}\n`).join('')}`);
  } finally {
    agent.close();
  }
}
