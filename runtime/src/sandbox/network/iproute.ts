import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { RuntimeError } from '../../sys/errors.js';

const exec = promisify(execFile);

/**
 * Runs iproute2's `ip` or `tc` in this process's network namespace (the
 * sandbox process lives in the container's host namespace, so no setns is
 * ever needed), or in the one `enter` (an nsenter argv prefix) puts it in.
 * Fails with the tool's own stderr.
 */
export async function iproute(
  tool: 'ip' | 'tc',
  args: readonly string[],
  enter: readonly string[] = [],
): Promise<string> {
  const [file = tool, ...rest] = [...enter, tool, ...args];
  try {
    const { stdout } = await exec(file, rest, { maxBuffer: 16 << 20 });
    return stdout;
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw new RuntimeError(`${tool} ${args.join(' ')}: ${stderr || (err as Error).message}`, 1, {
      cause: err,
    });
  }
}

/** `ip -j ...` parsed; iproute2 prints nothing at all for an empty list. */
export async function ipJson<T>(
  args: readonly string[],
  enter: readonly string[] = [],
  tool: 'ip' | 'tc' = 'ip',
): Promise<T[]> {
  const out = (await iproute(tool, ['-j', ...args], enter)).trim();
  return out === '' ? [] : (JSON.parse(out) as T[]);
}
