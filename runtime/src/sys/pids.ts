import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/** A pid file's number, or undefined when it is missing or holds no pid. */
export async function readPid(file: string): Promise<number | undefined> {
  try {
    const n = Number((await readFile(file, 'utf8')).trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Field 22 of /proc/PID/stat: the start time, which tells pid reuse apart. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may hold spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined; // exited, not yet reaped
    return fields[19];
  } catch {
    return undefined;
  }
}

/** Whether `pid` runs (zombies do not count), and is the process that started at `start`. */
export function isAlive(pid: number | undefined, start?: string): boolean {
  if (pid === undefined || pid <= 0) return false;
  const now = processStart(pid);
  if (now === undefined) return false;
  return start === undefined || start === now;
}

export function killQuietly(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}
