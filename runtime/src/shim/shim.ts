import { closeSync, writeSync } from 'node:fs';
import type { Logger } from 'pino';
import { AgentClient } from '../agent/client.js';
import { messageOf } from '../errors.js';
import { attachConsole } from './console.js';
import {
  exitLike,
  forwardSignals,
  pumpOutput,
  relayStdin,
  waitAndDrain,
  type ProcessRef,
} from './relay.js';

export interface ShimOptions {
  socket: string;
  id: string;
  execId: string;
  consoleSocket?: string;
  log: Logger;
}

/** Exit status of a shim whose guest process's end it could not learn (the VM died). */
const LOST = 255;

/**
 * `kapsel __shim`: the host process that stands for one guest process (the
 * pid in --pid-file). It holds the stdio its caller gave `create`/`exec`
 * (or a pty sent over --console-socket), relays it through the sandbox
 * monitor, forwards the signals it gets, and ends as the process ended.
 */
export async function runShim(o: ShimOptions): Promise<never> {
  const agent = AgentClient.forSocket(o.socket);
  const p: ProcessRef = { agent, id: o.id, execId: o.execId };
  let outputs: Promise<unknown>;
  try {
    if (o.consoleSocket !== undefined) {
      outputs = attachConsole(p, o.consoleSocket, o.log);
    } else {
      outputs = Promise.all([
        pumpOutput(p, 'stdout', process.stdout),
        pumpOutput(p, 'stderr', process.stderr),
      ]);
      relayStdin(p, process.stdin, o.log);
    }
    outputs.catch((err: unknown) => {
      o.log.debug({ err }, 'output relay ended with an error');
    });
    forwardSignals(p, o.log);
  } catch (err) {
    tellCreator(messageOf(err));
    process.exit(1);
  }
  tellCreator('ok');
  try {
    const exit = await waitAndDrain(p, outputs);
    o.log.info({ id: o.id, execId: o.execId, ...exit }, 'process exited');
    exitLike(exit);
  } catch (err) {
    o.log.error({ err, id: o.id, execId: o.execId }, 'lost the process: its VM is gone');
    process.exit(LOST);
  }
}

function tellCreator(message: string): void {
  try {
    writeSync(3, message);
    closeSync(3);
  } catch {
    // the creator is gone
  }
}
