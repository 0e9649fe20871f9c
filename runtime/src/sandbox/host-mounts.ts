import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, chown, mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { RuntimeError } from '../sys/errors.js';
import { mkdirAll } from '../../../oci/fs/mkdir-all.js';

const exec = promisify(execFile);

/**
 * Host-side mounts for a sandbox's shared directory. virtiofsd shares one
 * directory per sandbox; each container's rootfs and bind-mount sources are
 * bind-mounted into it. virtiofsd runs in its own mount namespace, a slave of
 * the host's, so the directory is made a shared mount first: binds made after
 * virtiofsd started then propagate into its view (what Kata does with its
 * kataHostSharedDir).
 */
export async function makeSharedMount(dir: string): Promise<void> {
  await mkdirAll(dir, 0o700);
  // The guest sees this mode on the root of its share: containers in a user
  // namespace (any mapping, several per pod) must pass through it, to their
  // own 0700 directories (makeOwnedDir). The VM directory above is 0700, so
  // no host user gets in by this.
  await chmod(dir, 0o711);
  await mount(['--bind', dir, dir], dir);
  await mount(['--make-shared', dir], dir);
}

/**
 * Makes `dir` (its parent must exist) mode 0700, owned by `owner`: the host
 * ids a container's root maps to, so only that container's setup in the
 * guest can traverse it.
 */
export async function makeOwnedDir(
  dir: string,
  owner: { uid: number; gid: number },
): Promise<void> {
  try {
    await mkdir(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new RuntimeError(
        `mkdir ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
        1,
        {
          cause: err,
        },
      );
    }
  }
  await chmod(dir, 0o700);
  await chown(dir, owner.uid, owner.gid);
}

/**
 * Binds `source` (file or directory) at `target`, creating the mount point;
 * with the mounts below `source` (`--rbind`, MS_REC) unless `recursive` is
 * false.
 */
export async function bindMount(source: string, target: string, recursive = true): Promise<void> {
  let isDir: boolean;
  try {
    isDir = (await stat(source)).isDirectory();
  } catch (err) {
    throw new RuntimeError(
      `bind mount ${source}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
  await mkdirAll(isDir ? target : dirname(target));
  if (!isDir) await writeFile(target, '', { flag: 'a' });
  await mount([recursive ? '--rbind' : '--bind', source, target], target);
}

/** Detaches `target` and everything below it; quiet when nothing is mounted. */
export async function unmountTree(target: string): Promise<void> {
  if (!isMounted(target)) return;
  try {
    await exec('umount', ['--recursive', '--lazy', target]);
  } catch (err) {
    if (isMounted(target)) {
      throw new RuntimeError(`umount ${target}: ${stderrOf(err)}`, 1, { cause: err });
    }
  }
}

/** Whether anything is mounted at or below `dir` in our mount namespace. */
export function hasMountsUnder(dir: string): boolean {
  return mountPoints().some((m) => m === dir || m.startsWith(`${dir}/`));
}

function isMounted(target: string): boolean {
  return mountPoints().includes(target);
}

function mountPoints(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => unescape(l.split(' ')[4] ?? ''));
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

async function mount(args: string[], target: string): Promise<void> {
  try {
    await exec('mount', args);
  } catch (err) {
    throw new RuntimeError(`mount ${target}: ${stderrOf(err)}`, 1, { cause: err });
  }
}

function stderrOf(err: unknown): string {
  const e = err as { stderr?: unknown; message?: string };
  return typeof e.stderr === 'string' && e.stderr.trim() !== ''
    ? e.stderr.trim()
    : (e.message ?? String(err));
}
