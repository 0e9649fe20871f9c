import { rm } from 'node:fs/promises';
import { TaskDefinition } from '../../../proto/generated/github.com/containerd/containerd/runtime/v2/task/shim.js';
import { reportSettingsTo, settings } from '../config/settings.js';
import { tellCreator } from '../sys/detached.js';
import { messageOf } from '../sys/errors.js';
import { IdleMemory } from '../../../oci/process/idle-memory.js';
import { hostMalloc } from '../sys/host-native.js';
import { createLogger } from '../sys/log.js';
import { TtrpcServer } from '../ttrpc/server.js';
import { vmDirOfPod } from './address.js';
import type { ShimFlags } from './flags.js';
import { podOf, shimLogOf } from './placement.js';
import { ShimPod } from './pod.js';
import { EventPublisher } from './publisher.js';
import { taskService } from './task-service.js';

/**
 * The long-lived shim of one pod (started by `start`): serves the task API
 * on -socket, owns the pod's VM, and goes on Shutdown (or SIGTERM) taking the
 * VM, its directory and the socket with it. Logs go to
 * runtime.shim_log (KAPSEL_SHIM_LOG), else kapsel-shim.log in the sandbox's bundle.
 */
export async function serveCommand(f: ShimFlags): Promise<number> {
  const log = createLogger({
    file: shimLogOf(f),
    format: 'json',
    debug: f.debug || settings().runtime.enable_debug,
  });
  reportSettingsTo(log);
  // stdio goes nowhere (containerd must not wait on it): say why we die.
  process.on('uncaughtException', (err) => {
    log.fatal({ err, stack: err.stack }, 'shim failed');
    process.exit(2);
  });
  process.on('exit', (code) => {
    log.info({ code }, 'shim exits');
  });
  process.on('SIGHUP', () => {
    log.warn('SIGHUP ignored');
  });
  const events = new EventPublisher(f.publishBinary, f.address, f.namespace, log);
  const pod = new ShimPod(vmDirOfPod(podOf(f).key), events, log);
  const server = new TtrpcServer();
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  // Lets the Shutdown reply go out before the connections drop.
  const shutdown = (): void => void setTimeout(finish, 50);
  const idleMemory = new IdleMemory(hostMalloc, log);
  server.onCall = (service, method, code, ms) => {
    log.debug({ service, method, code, ms }, 'task api call');
    idleMemory.callDone();
  };
  server.registerDefinition(TaskDefinition, taskService(pod, shutdown, log));
  try {
    await server.listen(f.socket);
  } catch (err) {
    tellCreator(`listen on ${f.socket}: ${messageOf(err)}`);
    return 1;
  }
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  tellCreator('ok');
  log.info({ id: f.id, socket: f.socket, pid: process.pid }, 'shim serving');
  await finished;
  log.info('shim shutting down');
  await server.close();
  await pod.releaseVm().catch((err: unknown) => {
    log.error({ err }, 'stopping the VM failed');
  });
  await events.flushed();
  await rm(f.socket, { force: true });
  return 0;
}
