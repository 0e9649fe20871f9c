import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { destroyContainer, monitorOf } from '../container.js';
import { RuntimeError } from '../errors.js';
import { canDelete } from '../lifecycle.js';
import { currentStatus, isAlive, StateStore } from '../state.js';

/**
 * `kapsel delete [--force] ID`. A created or stopped container goes; with
 * --force a running one is killed first (all its processes, as runc does).
 * runc succeeds quietly on --force for a container that does not exist.
 */
export async function deleteContainer(
  root: string,
  id: string,
  force: boolean,
  log: Logger,
): Promise<void> {
  const store = new StateStore(root);
  let record;
  try {
    record = await store.load(id);
  } catch (err) {
    if (force && err instanceof RuntimeError && err.message === 'container does not exist') return;
    throw err;
  }
  const status = currentStatus(record);
  const refusal = canDelete(status, force, id);
  if (refusal !== undefined) throw new RuntimeError(refusal);
  if (status === 'running' || status === 'paused') {
    const agent = monitorOf(record);
    try {
      if (status === 'paused') await agent.resumeContainer(id).catch(() => undefined);
      await agent.signalProcess(id, 9, '', true).catch((err: unknown) => {
        log.debug({ err }, 'SIGKILL on delete --force failed');
      });
    } finally {
      agent.close();
    }
    // The shim (or foreground run) notices and ends; give it a moment.
    for (let i = 0; i < 50 && isAlive(record.pid, record.pidStart); i++) await sleep(100);
  }
  await destroyContainer(store, record, log);
}
