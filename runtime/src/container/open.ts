import { AgentClient } from '../sandbox/agent-client.js';
import { vmDirLayout } from '../sandbox/vm-dir.js';
import { RuntimeError } from '../sys/errors.js';
import type { Status } from './lifecycle.js';
import { currentStatus, StateStore, type ContainerRecord } from './state.js';

/** A container opened for one verb: its record, its status now, its sandbox's agent. */
export interface OpenContainer {
  store: StateStore;
  record: ContainerRecord;
  status: Status;
  /** The agent API, through the container's sandbox process. */
  agent: AgentClient;
}

/** The agent API of a container's sandbox (its process's socket); close it after use. */
export function agentOf(r: ContainerRecord): AgentClient {
  return AgentClient.forSocket(vmDirLayout(r.vmDir).socket);
}

/**
 * What every verb after create does first: loads the container, refuses
 * with runc's text when `legal` (a lifecycle.ts check) says the verb may
 * not go ahead, and hands `use` the container with a client of its
 * sandbox, closed whatever `use` does. (The client connects on its first
 * call, so a verb that fails before it calls costs nothing.)
 */
export async function withContainer<T>(
  root: string,
  id: string,
  legal: (s: Status) => string | undefined,
  use: (c: OpenContainer) => Promise<T>,
): Promise<T> {
  const store = new StateStore(root);
  const record = await store.load(id);
  const status = currentStatus(record);
  const refusal = legal(status);
  if (refusal !== undefined) throw new RuntimeError(refusal);
  const agent = agentOf(record);
  try {
    return await use({ store, record, status, agent });
  } finally {
    agent.close();
  }
}
