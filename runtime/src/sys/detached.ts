import { spawn, type IOType } from 'node:child_process';
import { closeSync, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { RuntimeError } from './errors.js';
import { formatMs, readyTimeoutMs, REPORT_GRACE_MS } from './ready-deadline.js';

/** fd 3 of a detached process: the pipe its starter waits on for the verdict. */
const READY_FD = 3;

/**
 * Node flags of the detached processes, which live as long as their
 * sandbox or container. V8 grows the young generation with the allocation
 * rate, up to 16 MiB a semi-space, and keeps it once grown (the guest
 * agent's figures are in native/init/agent-flags.h); 1 MiB is enough for
 * processes whose calls allocate little that lives.
 */
const LONG_LIVED_NODE_FLAGS = ['--max-semi-space-size=1'];

/**
 * Starts a hidden verb of this same kapsel (`__monitor`; the shim v2 is kapsel itself too) as a
 * detached process in its own session, and waits for its verdict on fd 3:
 * "ok" once it serves, or the reason it failed. `enter` runs it in a
 * namespace (see network/netns.ts). It outlives us; whoever
 * reaps orphans (containerd's shim is a subreaper) gets its exit status.
 * After `timeoutMs` without a verdict its whole process group (its session:
 * QEMU and virtiofsd are in it too) is SIGKILLed and a RuntimeError says
 * `<what>: not ready within N s; killed it (pid P)`: the caller cleans up
 * what it left.
 */
export async function startDetached(
  args: readonly string[],
  stdio: [IOType | number, IOType | number, IOType | number],
  what: string,
  enter: readonly string[] = [],
  timeoutMs = readyTimeoutMs() + REPORT_GRACE_MS,
): Promise<number> {
  const script = process.argv[1];
  if (script === undefined) throw new Error('cannot tell which kapsel script runs');
  const kapsel = [process.execPath, ...process.execArgv, ...LONG_LIVED_NODE_FLAGS, script];
  return startDetachedProgram(kapsel, args, stdio, what, enter, timeoutMs);
}

/**
 * startDetached for any program (`program` is its argv prefix: the per-process
 * shim is native/host/shim.c), with the same protocol: fd 3 carries "ok" or
 * why it failed.
 */
export async function startDetachedProgram(
  program: readonly string[],
  args: readonly string[],
  stdio: [IOType | number, IOType | number, IOType | number],
  what: string,
  enter: readonly string[] = [],
  timeoutMs = readyTimeoutMs() + REPORT_GRACE_MS,
): Promise<number> {
  // `enter` is an argv prefix that execs the program (nsenter, unshare
  // without --fork), so the pid we get is still the program's.
  const argv = [...enter, ...program, ...args];
  const [file, ...rest] = argv;
  if (file === undefined) throw new Error(`${what}: no program`);
  const child = spawn(file, rest, {
    detached: true,
    stdio: [stdio[0], stdio[1], stdio[2], 'pipe'], // the pipe is READY_FD
  });
  const pipe = child.stdio[3] as Readable | null | undefined;
  if (pipe === null || pipe === undefined) throw new Error(`${what}: no ready pipe`);
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve(signal ? `killed by ${signal}` : `exit status ${code ?? '?'}`);
    });
  });
  let message = '';
  pipe.setEncoding('utf8');
  pipe.on('data', (d: string) => (message += d));
  const verdict = await new Promise<'told' | 'timeout'>((resolve, reject) => {
    const timer = setTimeout(resolve, timeoutMs, 'timeout');
    pipe.once('close', () => {
      clearTimeout(timer);
      resolve('told');
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  if (verdict === 'timeout') {
    const pid = child.pid;
    if (pid !== undefined) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }
    await exited;
    pipe.destroy();
    throw new RuntimeError(
      `${what}: not ready within ${formatMs(timeoutMs)} (KAPSEL_READY_TIMEOUT and ${formatMs(REPORT_GRACE_MS)} to report); killed it (pid ${pid ?? '?'})`,
    );
  }
  if (message !== 'ok') {
    const status = await Promise.race([
      exited,
      new Promise<string>((r) => setTimeout(r, 2000, '')),
    ]);
    throw new RuntimeError(
      `${what}: ${message !== '' ? message : `exited before it was ready${status ? ` (${status})` : ''}`}`,
    );
  }
  child.unref();
  pipe.destroy();
  if (child.pid === undefined) throw new Error(`${what}: no pid`);
  return child.pid;
}

/**
 * The detached side of startDetached: "ok" once it serves, or why it
 * failed. Said once; a second call, or a starter that is gone, is quiet.
 */
export function tellCreator(message: string): void {
  try {
    writeSync(READY_FD, message);
    closeSync(READY_FD);
  } catch {
    // told already, or the creator is gone
  }
}
