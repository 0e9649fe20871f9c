import type { Logger } from 'pino';
import { createContainer, destroyContainer, monitorOf } from '../container.js';
import { forwardSignals, pumpOutput, relayStdin, type ProcessRef } from '../shim/relay.js';
import { StateStore } from '../state.js';
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
  log: Logger;
}

/**
 * `kapsel run ID`: create + start. Detached, the container gets a shim and
 * we return. In the foreground this process is the shim: the caller's stdio
 * is the container's, signals are forwarded, and the exit status is the
 * container's (128+n when signal n killed it, as runc reports it); the
 * container is deleted afterwards unless --keep.
 */
export async function run(o: RunOptions): Promise<number> {
  const common = {
    root: o.root,
    id: o.id,
    bundle: o.bundle,
    debug: o.debug,
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
  const agent = monitorOf(record);
  const p: ProcessRef = { agent, id: o.id, execId: '' };
  let stopForwarding: (() => void) | undefined;
  try {
    const outputs = Promise.all([
      pumpOutput(p, 'stdout', process.stdout),
      pumpOutput(p, 'stderr', process.stderr),
    ]);
    outputs.catch(() => undefined);
    await start(o.root, o.id);
    stopForwarding = forwardSignals(p, o.log);
    relayStdin(p, process.stdin, o.log);
    const exit = await agent.waitProcess(o.id);
    await outputs.catch(() => undefined);
    return exit.exitCode;
  } finally {
    stopForwarding?.();
    process.stdin.pause();
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
    await start(o.root, o.id);
  } catch (err) {
    const r = await store.load(o.id).catch(() => undefined);
    if (r !== undefined) await destroyContainer(store, r, o.log).catch(() => undefined);
    throw err;
  }
}
