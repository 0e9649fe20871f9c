import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { RuntimeError } from '../errors.js';
import { isAlive, StateStore, toOciState } from '../state.js';

/**
 * `kapsel delete [--force] ID`. With --force a running container is killed:
 * its VM goes first (which ends the container and makes its `kapsel run`
 * clean up), then anything still alive is killed outright.
 */
export async function deleteContainer(
  root: string,
  id: string,
  force: boolean,
  log: Logger,
): Promise<void> {
  const store = new StateStore(root);
  const record = await store.load(id);
  const status = toOciState(record).status;
  if (status !== 'stopped' && !force) {
    throw new RuntimeError(`cannot delete container ${id} that is not stopped: ${status}`);
  }
  for (const pid of [record.qemuPid, record.virtiofsdPid]) {
    if (pid !== undefined && isAlive(pid)) killQuietly(pid, 'SIGKILL');
  }
  if (isAlive(record.pid) && record.pid !== process.pid) {
    // Give `kapsel run` a moment to notice and clean up after itself.
    for (let i = 0; i < 50 && isAlive(record.pid); i++) await sleep(100);
    if (isAlive(record.pid)) {
      log.warn({ pid: record.pid }, 'container process did not exit; killing it');
      killQuietly(record.pid, 'SIGKILL');
    }
  }
  await store.remove(id);
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}
