import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Process } from '../../../oci/spec.js';
import { agentCall, monitorOf, readSpec } from '../container.js';
import { RuntimeError } from '../errors.js';
import { canExec } from '../lifecycle.js';
import { forwardSignals, pumpOutput, relayStdin, type ProcessRef } from '../shim/relay.js';
import { startShim } from '../shim/spawn.js';
import { currentStatus, StateStore } from '../state.js';

export interface ExecFlags {
  process?: string;
  tty: boolean;
  detach: boolean;
  pidFile?: string;
  consoleSocket?: string;
  env: string[];
  cwd?: string;
  user?: string;
}

/**
 * `kapsel exec [flags] ID [COMMAND ARGS...]` or `--process FILE`: another
 * process in a running container. Detached, a shim stands for it (its pid in
 * --pid-file); in the foreground we relay it and exit with its status.
 */
export async function exec(
  root: string,
  id: string,
  command: string[],
  f: ExecFlags,
  log: Logger,
): Promise<number> {
  const store = new StateStore(root);
  const record = await store.load(id);
  const refusal = canExec(currentStatus(record));
  if (refusal !== undefined) throw new RuntimeError(refusal);
  const proc = await processOf(record.bundle, command, f);
  const execId = `exec-${randomBytes(6).toString('hex')}`;
  const agent = monitorOf(record);
  const p: ProcessRef = { agent, id, execId };
  try {
    await agentCall(agent.execProcess(id, execId, JSON.stringify(proc)));
    if (f.detach) {
      const pid = await startShim({
        root,
        socket: `${record.vmDir}/monitor.sock`,
        id,
        execId,
        ...(f.consoleSocket === undefined ? {} : { consoleSocket: f.consoleSocket }),
        logFile: `${store.dirOf(id)}/shim-${execId}.log`,
      });
      if (f.pidFile !== undefined) {
        await writeFile(`${f.pidFile}.tmp`, String(pid));
        await rename(`${f.pidFile}.tmp`, f.pidFile);
      }
      return 0;
    }
    const raw = proc.terminal === true && process.stdin.isTTY;
    if (raw) process.stdin.setRawMode(true);
    const outputs = Promise.all([
      pumpOutput(p, 'stdout', process.stdout),
      proc.terminal === true ? Promise.resolve() : pumpOutput(p, 'stderr', process.stderr),
    ]);
    outputs.catch(() => undefined);
    const stop = forwardSignals(p, log);
    relayStdin(p, process.stdin, log);
    if (proc.terminal === true && process.stdout.isTTY) {
      const resize = (): void => {
        agent
          .ttyWinResize(id, process.stdout.rows, process.stdout.columns, execId)
          .catch(() => undefined);
      };
      resize();
      process.stdout.on('resize', resize);
    }
    try {
      const exit = await agent.waitProcess(id, execId);
      await outputs.catch(() => undefined);
      return exit.exitCode;
    } finally {
      stop();
      if (raw) process.stdin.setRawMode(false);
      process.stdin.pause();
    }
  } finally {
    agent.close();
  }
}

/** The process to run: --process FILE, or the container's with the flags applied. */
async function processOf(bundle: string, command: string[], f: ExecFlags): Promise<Process> {
  if (f.process !== undefined) {
    const text = await readFile(f.process === '-' ? '/dev/stdin' : f.process, 'utf8');
    try {
      return JSON.parse(text) as Process;
    } catch (err) {
      throw new RuntimeError(`process: ${f.process}: ${(err as Error).message}`);
    }
  }
  if (command.length === 0) throw new RuntimeError('exec: no command given (or use --process)');
  const base = (await readSpec(bundle))?.process;
  const env = [...(base?.env ?? []), ...f.env];
  const proc: Process = {
    ...(base ?? { cwd: '/', user: { uid: 0, gid: 0 } }),
    args: command,
    env,
    terminal: f.tty,
    cwd: f.cwd ?? base?.cwd ?? '/',
    user: f.user === undefined ? (base?.user ?? { uid: 0, gid: 0 }) : parseUser(f.user),
  };
  delete proc.consoleSize;
  return proc;
}

/** runc's --user UID[:GID], numeric only (names would need the guest's /etc/passwd). */
function parseUser(s: string): { uid: number; gid: number } {
  const m = /^(\d+)(?::(\d+))?$/.exec(s);
  if (m === null) throw new RuntimeError(`invalid --user ${JSON.stringify(s)}: want UID[:GID]`);
  return { uid: Number(m[1]), gid: Number(m[2] ?? 0) };
}
