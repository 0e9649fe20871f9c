import { resourcesOf, type UpdateFlags } from '../args/update-flags.js';
import { agentCall } from '../sandbox/agent-client.js';
import { canInspect } from '../container/lifecycle.js';
import { withContainer } from '../container/open.js';

/**
 * `kapsel update [--resources FILE|-] [--memory N ...] ID`: new
 * linux.resources for a running container; what is not given stays.
 */
export async function update(root: string, id: string, f: UpdateFlags): Promise<void> {
  await withContainer(root, id, canInspect, async ({ agent }) => {
    const resources = await resourcesOf(f);
    await agentCall(agent.updateContainer(id, JSON.stringify(resources)));
  });
}
