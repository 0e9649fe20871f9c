import { status as grpcStatus } from '@grpc/grpc-js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { destroyContainer, FORCE_CALL_MS } from '../container/destroy.js';
import { canDelete } from '../container/lifecycle.js';
import { withContainer } from '../container/open.js';
import { forgetBootLogs } from '../sandbox/boot-logs.js';
import { vmDirOf } from '../sandbox/vm-dir.js';
import { RuntimeError } from '../sys/errors.js';
import { isAlive } from '../sys/pids.js';

/**
 * `kapsel delete [--force] ID`. A created or stopped container goes; with
 * --force a running one is killed first (all its processes, as runc does).
 * runc succeeds quietly on --force for a container that does not exist.
 * The logs a failed create of the id kept (sandbox/boot-logs.ts) go too.
 */
export async function deleteContainer(
  root: string,
  id: string,
  force: boolean,
  log: Logger,
): Promise<void> {
  const legal = (s: Parameters<typeof canDelete>[0]): string | undefined => canDelete(s, force, id);
  try {
    await withContainer(root, id, legal, async ({ store, record, status, agent }) => {
      let hung = false;
      if (status === 'running' || status === 'paused') {
        if (status === 'paused') {
          await agent.resumeContainer(id, FORCE_CALL_MS).catch(() => undefined);
        }
        const killed = await agent.signalProcess(id, 9, '', true, FORCE_CALL_MS).then(
          () => true,
          (err: unknown) => {
            log.debug({ err }, 'SIGKILL on delete --force failed');
            hung = (err as { code?: unknown }).code === grpcStatus.DEADLINE_EXCEEDED;
            return false;
          },
        );
        // The shim (or foreground run) notices and ends; give it a moment.
        // Without the sandbox's answer it would not: destroy kills it (its
        // end then reads as SIGKILL, the same 137 the container's gives). 2 s,
        // not more: a guest whose shared fs hangs (virtiofsd stopped) never
        // reports the end, and delete --force must stay prompt.
        for (let i = 0; killed && i < 20 && isAlive(record.pid, record.pidStart); i++) {
          await sleep(100);
        }
      }
      await destroyContainer(store, record, log, force, hung);
    });
  } catch (err) {
    if (force && err instanceof RuntimeError && err.message === 'container does not exist') return;
    throw err;
  } finally {
    // A create of this id that failed to boot kept its VM's logs there.
    await forgetBootLogs(vmDirOf(root, id)).catch(() => undefined);
  }
}
