import type { Process } from '../../../oci/spec.js';
import { given, SpecError, validateProcess } from '../../../oci/validate/index.js';
import { RuntimeError } from '../sys/errors.js';
import { readInputFile } from '../sys/input-file.js';
import { callerRlimits, withDefaultRlimits } from '../sys/rlimits.js';
import { readSpec } from './bundle.js';

/** runc exec's flags, as commander hands them over. */
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
 * The process to run: --process FILE, or the container's with the flags
 * applied; checked by the agent's validator (oci/validate) here. Rlimits as
 * runc gives an exec: the process's own if it has any, else the
 * container's, and the caller's for every other type.
 * @throws RuntimeError naming the field
 */
export async function processOf(bundle: string, command: string[], f: ExecFlags): Promise<Process> {
  const proc = await rawProcessOf(bundle, command, f);
  try {
    validateProcess(proc, 'process');
  } catch (err) {
    if (err instanceof SpecError) throw new RuntimeError(err.message, 1, { cause: err });
    throw err;
  }
  const own = given(proc.rlimits) && proc.rlimits.length > 0;
  const base = own ? proc.rlimits : (await readSpec(bundle))?.process?.rlimits;
  return { ...proc, rlimits: withDefaultRlimits(base, await callerRlimits()) };
}

async function rawProcessOf(bundle: string, command: string[], f: ExecFlags): Promise<Process> {
  if (f.process !== undefined) {
    const text = await readInputFile(f.process);
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
