import { agentCall } from '../sandbox/agent-client.js';
import { canInspect } from '../container/lifecycle.js';
import { withContainer } from '../container/open.js';

/**
 * `kapsel ps [--format table|json] ID`: the container's processes, as pids
 * of the guest (there is no host process to show: they live in the VM).
 */
export async function ps(root: string, id: string, format: string): Promise<void> {
  const pids = await withContainer(root, id, canInspect, ({ agent }) =>
    agentCall(agent.listProcesses(id)),
  );
  if (format === 'json') process.stdout.write(`${JSON.stringify(pids)}\n`);
  else process.stdout.write(`PID\n${pids.map((p) => `${p}\n`).join('')}`);
}
