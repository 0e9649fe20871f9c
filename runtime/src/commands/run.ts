import { join } from 'node:path';
import type { Logger } from 'pino';
import { createContainer } from '../container/create.js';
import { destroyContainer } from '../container/destroy.js';
import { agentOf } from '../container/open.js';
import { StateStore } from '../container/state.js';
import { bootLogsDirOf, keepBootLogs } from '../sandbox/boot-logs.js';
import { runForeground } from '../shim/foreground.js';
import { requireHostConsole } from '../shim/host-console.js';
import { LOST_EXIT } from '../shim/stop-reason.js';
import { RuntimeError } from '../sys/errors.js';
import { start } from './start.js';

export interface RunOptions {
  root: string;
  bundle: string;
  id: string;
  detach: boolean;
  keep: boolean;
  pidFile?: string;
  consoleSocket?: string;
  debug: boolean;
  systemdCgroup?: boolean;
  log: Logger;
}

/**
 * `kapsel run ID`: create + start. Detached, the container gets a shim and
 * we return. In the foreground this process is the shim: the caller's stdio
 * is the container's, signals are forwarded, and the exit status is the
 * container's; the container is deleted afterwards unless --keep.
 */
export async function run(o: RunOptions): Promise<number> {
  const common = {
    root: o.root,
    id: o.id,
    bundle: o.bundle,
    debug: o.debug,
    systemdCgroup: o.systemdCgroup ?? false,
    log: o.log,
    ...(o.pidFile === undefined ? {} : { pidFile: o.pidFile }),
  };
  const store = new StateStore(o.root);
  if (o.detach) {
    await createContainer({
      ...common,
      inline: false,
      ...(o.consoleSocket === undefined ? {} : { consoleSocket: o.consoleSocket }),
    });
    await startOrDestroy(store, o);
    return 0;
  }
  const record = await createContainer({
    ...common,
    inline: true,
    beforeBoot: (spec) => {
      if (spec.process?.terminal === true) requireHostConsole();
    },
  });
  const agent = agentOf(record);
  try {
    return await runForeground(
      { agent, id: o.id, execId: '' },
      {
        terminal: false,
        log: o.log,
        root: o.root,
        beforeInput: async () => {
          await start(o.root, o.id, o.log);
        },
      },
    ).catch(async (err: unknown) => {
      throw o.keep ? err : await keepLostLogs(err, store.dirOf(o.id), record.vmDir);
    });
  } finally {
    agent.close();
    if (!o.keep) {
      const r = await store.load(o.id).catch(() => undefined);
      if (r !== undefined) await destroyContainer(store, { ...r, status: 'stopped' }, o.log);
    } else {
      await store.update(o.id, (r) => {
        r.status = 'stopped';
      });
    }
  }
}

async function startOrDestroy(store: StateStore, o: RunOptions): Promise<void> {
  try {
    await start(o.root, o.id, o.log);
  } catch (err) {
    const r = await store.load(o.id).catch(() => undefined);
    if (r !== undefined) await destroyContainer(store, r, o.log).catch(() => undefined);
    throw err;
  }
}

/**
 * A foreground run whose sandbox died deletes the container, and with it
 * the VM's logs its stop reason names: they move to the bounded place a
 * failed boot's go (sandbox/boot-logs.ts; `delete` of the id removes them),
 * and the message names that.
 */
async function keepLostLogs(err: unknown, stateDir: string, vmDir: string): Promise<unknown> {
  if (!(err instanceof RuntimeError) || err.exitCode !== LOST_EXIT) return err;
  const kept = await keepBootLogs(vmDir, stateDir);
  if (kept === '') return err;
  const message = err.message.replace(
    join(stateDir, 'console.log'),
    join(bootLogsDirOf(vmDir), 'console.log'),
  );
  return new RuntimeError(message, err.exitCode, { cause: err });
}
