import type { Logger } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import { lostReason, StateStore } from '../container/state.js';
import { AgentClient } from '../sandbox/agent-client.js';
import { tellCreator } from '../sys/detached.js';
import { messageOf } from '../sys/errors.js';
import { attachConsole } from './console.js';
import { exitLike, Relay, type ProcessRef } from './relay.js';

export interface ShimOptions {
  /** --root: where the container's record is. */
  root?: string;
  socket: string;
  id: string;
  execId: string;
  consoleSocket?: string;
  log: Logger;
}

/** Exit status of a shim whose guest process's end it could not learn (the VM died). */
const LOST = 255;
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
    if (o.root !== undefined && o.execId === '') await waitForReason(o.root, o.id);
    process.exit(LOST);
  }
}

/** How long a shim that lost its process waits for the sandbox to record the reason. */
const REASON_WAIT_MS = 3000;

/** Waits until the container's record says why it stopped, at most REASON_WAIT_MS. */
async function waitForReason(root: string, id: string): Promise<void> {
  const store = new StateStore(root);
  for (let t = 0; t < REASON_WAIT_MS; t += 100) {
    const r = await store.load(id).catch(() => undefined);
    if (r === undefined || r.stopReason !== undefined || lostReason(r) !== undefined) return;
    await sleep(100);
  }
}
