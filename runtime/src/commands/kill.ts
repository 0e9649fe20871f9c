import { agentCall } from '../sandbox/agent-client.js';
import { canKill } from '../container/lifecycle.js';
import { withContainer } from '../container/open.js';
import { signalNumber } from '../sys/signals.js';

/** `kapsel kill [--all] ID [SIGNAL]`: SIGTERM by default, names or numbers. */
export async function kill(root: string, id: string, signal: string, all: boolean): Promise<void> {
  let sig = 0;
  // runc's order of refusals: no such container, then a bad signal, then the state.
  const legal = (s: Parameters<typeof canKill>[0]): string | undefined => {
    sig = signalNumber(signal);
    return canKill(s);
  };
  await withContainer(root, id, legal, ({ agent }) =>
    agentCall(agent.signalProcess(id, sig, '', all)),
  );
}
