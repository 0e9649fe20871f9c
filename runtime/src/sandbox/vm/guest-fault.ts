import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';

/**
 * Why a guest died, read from the last lines of its serial console: the
 * kernel's panic line (kernel/panic.c, "Kernel panic - not syncing: ..."),
 * its OOM killer's verdict (mm/oom_kill.c, "Out of memory: Killed process
 * PID (COMM)"), and our init's word on the agent's end (native/init/init.c).
 * Undefined when the console says nothing about it.
 */
export function guestFault(lines: readonly string[]): string | undefined {
  const parts: string[] = [];
  const panic = lastMatch(lines, /Kernel panic - not syncing: (.*)/);
  if (panic !== undefined) parts.push(`guest kernel panic: ${panic[1]?.trim()}`);
  const oom = lastMatch(
    lines,
    /Out of memory(?: \(oom_kill_allocating_task\))?: Killed process (\d+) \(([^)]*)\)/,
  );
  if (oom !== undefined)
    parts.push(`guest out of memory: the kernel killed ${oom[2]} (pid ${oom[1]})`);
  const agent = lastMatch(lines, /kapsel-init: (agent (?:exited|killed|ended) .*)/);
  if (agent !== undefined) parts.push(`the guest's ${agent[1]?.trim()}`);
  return parts.length === 0 ? undefined : parts.join('; ');
}

function lastMatch(lines: readonly string[], re: RegExp): RegExpExecArray | undefined {
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = re.exec(lines[i] ?? '');
    if (m !== null) return m;
  }
  return undefined;
}

/**
 * The stop reason of a sandbox a host process's death (`fault`) ended: when
 * that process was QEMU, what the guest's console says first (a panic, its
 * OOM killer), once the console pipe drained (at most 500 ms), read from
 * the log file `consoleLog`. Only then: an older console line (an OOM kill
 * the guest survived) explains nothing else.
 */
export async function faultReason(
  fault: string,
  qemuDied: boolean,
  guestConsole: { readonly done: Promise<void> },
  consoleLog: string,
): Promise<string> {
  if (!qemuDied) return fault;
  await Promise.race([guestConsole.done, delay(500, undefined, { ref: false })]);
  const guest = guestFault(await consoleTail(consoleLog));
  return guest === undefined ? fault : `${guest} (${fault})`;
}

/**
 * The last 64 KiB of a console log file as lines, [] when unreadable: a
 * panic's stack trace outgrows the tail the console keeps in memory.
 */
async function consoleTail(file: string): Promise<string[]> {
  try {
    const text = await readFile(file, 'latin1');
    return text.slice(-65536).split('\n');
  } catch {
    return [];
  }
}
