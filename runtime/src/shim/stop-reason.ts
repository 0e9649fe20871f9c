import { setTimeout as sleep } from 'node:timers/promises';
import { lostReason, StateStore } from '../container/state.js';

/** Exit status of a shim (or foreground run/exec) whose guest process's end it could not learn: the VM died. */
export const LOST_EXIT = 255;

/** How long a host process that lost its guest process waits for the sandbox to record why. */
export const REASON_WAIT_MS = 3000;

/**
 * Why the container stopped, once its record says so (the sandbox process
 * records a fault's reason ~0.3-1 s after it sees it: supervisor.ts gathers
 * deaths for 300 ms, a QEMU death reads the console), or undefined after
 * `waitMs` or when the record is gone.
 */
export async function waitForStopReason(
  root: string,
  id: string,
  waitMs = REASON_WAIT_MS,
): Promise<string | undefined> {
  const store = new StateStore(root);
  for (let t = 0; ; t += 100) {
    const r = await store.load(id).catch(() => undefined);
    if (r === undefined) return undefined;
    const reason = r.stopReason ?? lostReason(r);
    if (reason !== undefined || t >= waitMs) return reason;
    await sleep(100);
  }
}
