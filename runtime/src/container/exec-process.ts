import { readFile } from 'node:fs/promises';
import type { Process } from '../../../oci/spec.js';
import { RuntimeError } from '../sys/errors.js';
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

/** The process to run: --process FILE, or the container's with the flags applied. */
export async function processOf(bundle: string, command: string[], f: ExecFlags): Promise<Process> {
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
