// Reading and writing cgroup interface files. Every write names the OCI field
// it came from, so a value the kernel refuses is reported against the input.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentError } from '../errors.js';

/**
 * Writes one value to a cgroup file, as one write(2) (the kernel parses each
 * write separately; io.max and friends take one "MAJ:MIN key=value" per write).
 */
export async function writeCgroupFile(
  dir: string,
  file: string,
  value: string,
  field: string,
): Promise<void> {
  const path = join(dir, file);
  try {
    // O_WRONLY without O_CREAT: on cgroupfs a missing file means the
    // controller is not enabled here, which must not turn into a new file.
    await writeFile(path, value, { flag: 'r+' });
  } catch (err) {
    throw writeError(err, path, value, field);
  }
}

function writeError(err: unknown, path: string, value: string, field: string): AgentError {
  const code = (err as NodeJS.ErrnoException).code;
  const reason = err instanceof Error ? err.message : String(err);
  if (code === 'ENOENT') {
    return new AgentError(
      'invalid-argument',
      `${field}: ${path} does not exist (controller not available in this guest)`,
      { cause: err },
    );
  }
  // EINVAL, ERANGE, EBUSY: the kernel refused the value itself.
  const kind = code === 'EINVAL' || code === 'ERANGE' ? 'invalid-argument' : 'internal';
  return new AgentError(kind, `${field}: write ${JSON.stringify(value)} to ${path}: ${reason}`, {
    cause: err,
  });
}

/** The file's content without its trailing newline, or undefined if it does not exist. */
export async function readCgroupFile(dir: string, file: string): Promise<string | undefined> {
  try {
    return (await readFile(join(dir, file), 'utf8')).replace(/\n$/, '');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** "key value" lines (cpu.stat, memory.stat, memory.events, cgroup.events) as a map. */
export function parseFlatKeyed(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key === undefined || key === '' || value === undefined) continue;
    const n = Number(value);
    if (Number.isFinite(n)) out.set(key, n);
  }
  return out;
}

/** A limit file's value: "max" (or a missing file) is 0, the proto's "no limit". */
export function limitOf(text: string | undefined): number {
  if (text === undefined || text === 'max') return 0;
  const n = Number(text);
  return Number.isFinite(n) ? n : 0;
}

/** A counter file's value; 0 when missing or unreadable. */
export const numberOf = (text: string | undefined): number => {
  const n = Number(text ?? 0);
  return Number.isFinite(n) ? n : 0;
};
