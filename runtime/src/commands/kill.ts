import { agentCall, monitorOf } from '../container.js';
import { RuntimeError } from '../errors.js';
import { canKill } from '../lifecycle.js';
import { signalNumber } from '../signals.js';
import { currentStatus, StateStore } from '../state.js';

/** `kapsel kill [--all] ID [SIGNAL]`: SIGTERM by default, names or numbers. */
export async function kill(root: string, id: string, signal: string, all: boolean): Promise<void> {
  const record = await new StateStore(root).load(id);
  const sig = signalNumber(signal);
  const refusal = canKill(currentStatus(record));
  if (refusal !== undefined) throw new RuntimeError(refusal);
  const agent = monitorOf(record);
  try {
    await agentCall(agent.signalProcess(id, sig, '', all));
  } finally {
    agent.close();
  }
}
