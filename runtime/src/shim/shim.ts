import type { Logger } from 'pino';
import { AgentClient } from '../sandbox/agent-client.js';
import { tellCreator } from '../sys/detached.js';
import { messageOf } from '../sys/errors.js';
import { attachConsole } from './console.js';
import { exitLike, Relay, type ProcessRef } from './relay.js';
import { LOST_EXIT, waitForStopReason } from './stop-reason.js';

export interface ShimOptions {
  /** --root: where the container's record is. */
  root?: string;
  socket: string;
  id: string;
  execId: string;
  consoleSocket?: string;
  log: Logger;
}

/** How long a shim waits for output after its process ended. */
const DRAIN_MS = 5000;

/**
 * `kapsel __shim`: the host process that stands for one guest process (the
 * pid in --pid-file). It holds the stdio its caller gave `create`/`exec`
 * (or a pty sent over --console-socket), relays it through the sandbox
 * process, forwards the signals it gets, and ends as the process ended.
 */
export async function runShim(o: ShimOptions): Promise<never> {
  const agent = AgentClient.forSocket(o.socket);
  const p: ProcessRef = { agent, id: o.id, execId: o.execId };
  let relay: Relay;
  try {
    if (o.consoleSocket !== undefined) {
      relay = attachConsole(p, o.consoleSocket, o.log);
    } else {
      relay = new Relay(p, { stdout: process.stdout, stderr: process.stderr }, o.log);
      relay.takeInput(process.stdin);
    }
  } catch (err) {
    tellCreator(messageOf(err));
    process.exit(1);
  }
  tellCreator('ok');
  try {
    const exit = await relay.wait(DRAIN_MS);
    o.log.info({ id: o.id, execId: o.execId, ...exit }, 'process exited');
    exitLike(exit);
  } catch (err) {
    o.log.error({ err, id: o.id, execId: o.execId }, 'lost the process: its VM is gone');
    // An engine reads `state` once this pid is gone: give the sandbox
    // process the moment it needs to record why.
    if (o.root !== undefined && o.execId === '') await waitForStopReason(o.root, o.id);
    process.exit(LOST_EXIT);
  }
}
