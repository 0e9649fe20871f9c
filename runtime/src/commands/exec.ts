import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { processOf, type ExecFlags } from '../container/exec-process.js';
import { canExec } from '../container/lifecycle.js';
import { withContainer } from '../container/open.js';
import { agentCall } from '../sandbox/agent-client.js';
import { joinHostCgroup } from '../sandbox/host-cgroup/apply.js';
import { vmDirLayout } from '../sandbox/vm-dir.js';
import { runForeground } from '../shim/foreground.js';
import { requireHostConsole } from '../shim/host-console.js';
import { startShim } from '../shim/spawn.js';
import { messageOf, RuntimeError } from '../sys/errors.js';
import { writePidFile } from '../sys/pid-file.js';
import { killQuietly } from '../sys/pids.js';
import { FORCE_CALL_MS } from '../container/destroy.js';

/** runc's exit status for an exec that failed (exec.go: `fatalWithCode(..., 255)`). */
export const EXEC_FAILED_EXIT = 255;

/**
 * `kapsel exec [flags] ID [COMMAND ARGS...]` or `--process FILE`: another
 * process in a running container. Detached, a shim stands for it (its pid in
 * --pid-file); in the foreground we relay it and exit with its status. Any
 * failure of kapsel's own reads `exec failed: ...` and exits 255, as runc's
 * exec.go reports it (engines show that text: "OCI runtime exec failed:
 * exec failed: ...").
 */
export async function exec(
  root: string,
  id: string,
  command: string[],
  f: ExecFlags,
  log: Logger,
): Promise<number> {
  try {
    return await execIn(root, id, command, f, log);
  } catch (err) {
    throw new RuntimeError(`exec failed: ${messageOf(err)}`, EXEC_FAILED_EXIT, { cause: err });
  }
}

async function execIn(
  root: string,
  id: string,
  command: string[],
  f: ExecFlags,
  log: Logger,
): Promise<number> {
  return withContainer(root, id, canExec, async ({ store, record, agent }) => {
    const proc = await processOf(record.bundle, command, f);
    if (!f.detach && proc.terminal === true) requireHostConsole();
    const execId = `exec-${randomBytes(6).toString('hex')}`;
    await agentCall(agent.execProcess(id, execId, JSON.stringify(proc)));
    if (!f.detach) {
      return runForeground({ agent, id, execId }, { terminal: proc.terminal === true, log, root });
    }
    let pid: number | undefined;
    try {
      pid = await startShim({
        socket: vmDirLayout(record.vmDir).shims,
        id,
        execId,
        ...(f.consoleSocket === undefined ? {} : { consoleSocket: f.consoleSocket }),
        logFile: `${store.dirOf(id)}/shim-${execId}.log`,
      });
      // runc runs exec'd processes in the container's cgroup; theirs stand here.
      if (record.hostCgroup !== undefined) await joinHostCgroup(record.hostCgroup, pid);
      if (f.pidFile !== undefined) await writePidFile(f.pidFile, pid);
    } catch (err) {
      // Started, then a later step failed: runc kills the process it
      // exec'd (its init's setns child) rather than leave it unreported.
      await agent.signalProcess(id, 9, execId, false, FORCE_CALL_MS).catch((e: unknown) => {
        log.debug({ err: e }, 'killing the exec after a failure failed');
      });
      if (pid !== undefined) killQuietly(pid);
      throw err;
    }
    return 0;
  });
}
