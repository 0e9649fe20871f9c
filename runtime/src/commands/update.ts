import type { Logger } from 'pino';
import { SpecError, validateResources } from '../../../oci/validate/index.js';
import { resourcesOf, type UpdateFlags } from '../args/update-flags.js';
import { agentCall } from '../sandbox/agent-client.js';
import { canInspect } from '../container/lifecycle.js';
import { withContainer } from '../container/open.js';
import { RuntimeError } from '../sys/errors.js';

/**
 * `kapsel update [--resources FILE|-] [--memory N ...] ID`: new
 * linux.resources for a running container; what is not given, or given as
 * 0 or "" (as `runc update` and Docker send unset fields), stays. Checked
 * here with the agent's validator first, so a bad value never reaches it.
 */
export async function update(root: string, id: string, f: UpdateFlags, log: Logger): Promise<void> {
  await withContainer(root, id, canInspect, async ({ agent }) => {
    const resources = await resourcesOf(f);
    try {
      validateResources(resources, {
        ignore: (i) => {
          log.warn(`${i.field} is ignored: ${i.why} (runc ignores it on cgroup v2 too)`);
        },
      });
    } catch (err) {
      if (err instanceof SpecError) throw new RuntimeError(err.message, 1, { cause: err });
      throw err;
    }
    await agentCall(agent.updateContainer(id, JSON.stringify(resources)));
  });
}
