import { lstatSync, mkdirSync, statSync } from 'node:fs';
import { lstat, mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { errnoText } from '../errno-text.js';

/*
 * mkdir -p for the host and the guest alike (oci/ is the one module both
 * runtime/ and agent/ may import, and the bundle of each takes it in).
 *
 * Node 20's own `mkdir(p, { recursive: true })` (sync and async) loops at
 * 100% CPU forever when a mkdir answers ENOENT under a parent that exists,
 * e.g. anything below /proc: `mkdir('/proc/x/y', { recursive: true })`
 * never returns. Every path a user or a request names (--root, a bundle, a
 * mount point, a cgroup) goes through here instead. This follows Go's
 * os.MkdirAll (src/os/path.go), which runc uses: stat the path, make the
 * parent first, then mkdir; EEXIST of a directory (a racing creator) is
 * fine; any other error stops the walk.
 */

/** A failed step of mkdirAll: `mkdir <path>: <strerror>`, as Go's PathError reads. */
export class MkdirAllError extends Error {
  readonly code: string;
  readonly path: string;
  constructor(path: string, code: string, cause?: unknown) {
    super(`mkdir ${path}: ${strerror(code, cause)}`, { cause });
    this.name = 'MkdirAllError';
    this.code = code;
    this.path = path;
  }
}

function strerror(code: string, cause: unknown): string {
  return errnoText(
    cause instanceof Error ? cause : '',
    code === 'ENOTDIR' ? 'not a directory' : code,
  );
}

function codeOf(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? 'EIO';
}

/**
 * Makes `path` and every missing parent, each with `mode` (less the umask;
 * directories that exist keep theirs). Resolves to the first directory it
 * made, or undefined when `path` was a directory already (what Node's
 * recursive mkdir returns). Symlinks to directories along the way are
 * followed. Throws MkdirAllError naming the path that failed and its errno:
 * ENOTDIR when `path` or a parent exists and is not a directory, else what
 * mkdir(2) said (ENOENT under /proc, EACCES, EROFS ...).
 */
export async function mkdirAll(path: string, mode = 0o777): Promise<string | undefined> {
  const p = resolve(path);
  try {
    if ((await stat(p)).isDirectory()) return undefined;
    throw new MkdirAllError(p, 'ENOTDIR');
  } catch (err) {
    if (err instanceof MkdirAllError) throw err;
    // ENOENT: make it below. ENOTDIR, ELOOP, EACCES...: mkdir will say.
  }
  const parent = dirname(p);
  const madeAbove = parent === p ? undefined : await mkdirAll(parent, mode);
  try {
    await mkdir(p, { mode });
  } catch (err) {
    const isDir = await lstat(p).then(
      (s) => s.isDirectory(),
      () => false,
    );
    if (isDir) return madeAbove;
    throw new MkdirAllError(p, codeOf(err), err);
  }
  return madeAbove ?? p;
}

/** mkdirAll for the few callers that cannot await (same rules, same errors). */
export function mkdirAllSync(path: string, mode = 0o777): string | undefined {
  const p = resolve(path);
  try {
    if (statSync(p).isDirectory()) return undefined;
    throw new MkdirAllError(p, 'ENOTDIR');
  } catch (err) {
    if (err instanceof MkdirAllError) throw err;
  }
  const parent = dirname(p);
  const madeAbove = parent === p ? undefined : mkdirAllSync(parent, mode);
  try {
    mkdirSync(p, { mode });
  } catch (err) {
    let isDir = false;
    try {
      isDir = lstatSync(p).isDirectory();
    } catch {
      // gone or unreadable: report mkdir's own error
    }
    if (isDir) return madeAbove;
    throw new MkdirAllError(p, codeOf(err), err);
  }
  return madeAbove ?? p;
}
