import type { Logger } from 'pino';
import { createContainer } from '../container/create.js';
import { destroyContainer } from '../container/destroy.js';
import { agentOf } from '../container/open.js';
import { StateStore } from '../container/state.js';
import { runForeground } from '../shim/foreground.js';
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
  const record = await createContainer({ ...common, inline: true });
  const agent = agentOf(record);
  try {
    return await runForeground(
      { agent, id: o.id, execId: '' },
      {
        terminal: false,
        log: o.log,
        beforeInput: async () => {
          await start(o.root, o.id, o.log);
        },
      },
    );
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
