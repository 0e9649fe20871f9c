import { mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MkdirAllError, mkdirAll, mkdirAllSync } from '../../oci/fs/mkdir-all.js';

// Node 20's recursive mkdir spins forever on these (ENOENT under a parent
// that exists); mkdirAll must answer as Go's os.MkdirAll does, which runc
// uses: `mkdir /proc/kapsel-x: no such file or directory`.
const dir = mkdtempSync(join(tmpdir(), 'kapsel-mkdir-all-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe.each([
  ['async', (p: string, mode?: number) => mkdirAll(p, mode)],
  // A thrown error becomes a rejection, so one set of cases tests both.
  [
    'sync',
    (p: string, mode?: number) =>
      new Promise((r) => {
        r(mkdirAllSync(p, mode));
      }),
  ],
])('mkdirAll (%s)', (kind, mkdirAllOf) => {
  const base = join(dir, kind);

  it.each(['/proc/kapsel-x', '/proc/kapsel-x/y/z', '/proc/self/kapsel-x/y'])(
    'fails on %s with ENOENT naming the first directory it could not make',
    async (p) => {
      const first = p
        .split('/')
        .slice(0, p.startsWith('/proc/self') ? 4 : 3)
        .join('/');
      const err = await mkdirAllOf(p).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MkdirAllError);
      expect((err as MkdirAllError).code).toBe('ENOENT');
      expect((err as MkdirAllError).path).toBe(first);
      expect((err as Error).message).toBe(`mkdir ${first}: no such file or directory`);
    },
  );

  it('makes every missing parent and returns the first one it made', async () => {
    const made = await mkdirAllOf(join(base, 'a', 'b', 'c'));
    expect(made).toBe(base);
    expect(statSync(join(base, 'a', 'b', 'c')).isDirectory()).toBe(true);
    expect(await mkdirAllOf(join(base, 'a', 'b', 'c'))).toBeUndefined();
    expect(await mkdirAllOf(join(base, 'a', 'b', 'c', 'd/'))).toBe(join(base, 'a/b/c/d'));
  });

  it('follows a symlink to a directory along the way', async () => {
    await mkdirAllOf(join(base, 'real'));
    symlinkSync(join(base, 'real'), join(base, 'link'));
    expect(await mkdirAllOf(join(base, 'link', 'x', 'y'))).toBe(join(base, 'link', 'x'));
    expect(statSync(join(base, 'real', 'x', 'y')).isDirectory()).toBe(true);
    expect(await mkdirAllOf(join(base, 'link'))).toBeUndefined();
  });

  it('refuses a file in the way with ENOTDIR, at the path or above it', async () => {
    await mkdirAllOf(base);
    writeFileSync(join(base, 'file'), '');
    for (const p of [join(base, 'file'), join(base, 'file', 'below', 'more')]) {
      const err = await mkdirAllOf(p).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MkdirAllError);
      expect((err as MkdirAllError).code).toBe('ENOTDIR');
      expect((err as Error).message).toBe(`mkdir ${join(base, 'file')}: not a directory`);
    }
  });

  it('a dangling symlink in the way is reported, not followed forever', async () => {
    await mkdirAllOf(base);
    symlinkSync(join(base, 'nowhere', 'deeper'), join(base, 'dangling'));
    const err = await mkdirAllOf(join(base, 'dangling')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MkdirAllError);
    expect((err as MkdirAllError).code).toBe('EEXIST');
    expect((err as Error).message).toBe(`mkdir ${join(base, 'dangling')}: file already exists`);
  });

  it('gives its mode to the directories it makes, not to those that exist', async () => {
    const old = process.umask(0o022);
    try {
      await mkdirAllOf(join(base, 'm'), 0o755);
      await mkdirAllOf(join(base, 'm', 'n', 'o'), 0o700);
    } finally {
      process.umask(old);
    }
    expect(statSync(join(base, 'm')).mode & 0o777).toBe(0o755);
    expect(statSync(join(base, 'm', 'n')).mode & 0o777).toBe(0o700);
    expect(statSync(join(base, 'm', 'n', 'o')).mode & 0o777).toBe(0o700);
  });
});
