import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Spec } from '../../oci/spec.js';
import { vmDirLayout, vmDirOf } from '../../runtime/src/sandbox/vm-dir.js';
import {
  kapsel,
  kapselToFiles,
  makeBundle,
  processesMentioning,
  removeBundles,
  vmMissing,
} from '../support/kapsel-cli.js';
import { overrideEnv } from '../support/env.js';

const skip = vmMissing();

/** The default spec running `script` under sh, without a terminal, with `dir` at /data. */
function shSpec(spec: Spec, script: string, dir: string): void {
  if (spec.process === undefined) throw new Error('default spec has no process');
  spec.process = { ...spec.process, args: ['sh', '-c', script], terminal: false };
  spec.mounts = [
    ...(spec.mounts ?? []),
    { destination: '/data', type: 'bind', source: dir, options: ['rbind', 'rw'] },
  ];
}

/** Template directories (16 hex) under `dir`. */
function templates(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((n) => /^[0-9a-f]{16}$/.test(n)) : [];
}

/** The smaps fields (kB) of the mapping of `file` in process `pid`, summed. */
function mappingOf(pid: number, file: string): Record<string, number> | undefined {
  const lines = readFileSync(`/proc/${String(pid)}/smaps`, 'utf8').split('\n');
  let inside = false;
  let found: Record<string, number> | undefined;
  for (const line of lines) {
    const head = /^[0-9a-f]+-[0-9a-f]+ (\S{4}) \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head !== null) {
      inside = head[2] === file;
      if (inside) found = { ...(found ?? {}), [`perms ${head[1] ?? ''}`]: 1 };
      continue;
    }
    const field = /^(\w+):\s+(\d+) kB/.exec(line);
    if (inside && field !== null && found !== undefined) {
      const name = field[1] ?? '';
      found[name] = (found[name] ?? 0) + Number(field[2]);
    }
  }
  return found;
}

function qemuPidOf(root: string, id: string): number {
  return Number(readFileSync(vmDirLayout(vmDirOf(root, id)).pidfile, 'utf8'));
}

/**
 * shared_fs = "virtio-9p" (KAPSEL_SHARED_FS): QEMU serves the share over
 * 9p, no virtiofsd runs, and a sandbox started from a template maps the
 * template's RAM file privately (copy-on-write) instead of copying it.
 * The VM suites' file semantics run in this mode too (the vm-9p project of
 * vitest.config.ts).
 */
describe.skipIf(skip !== undefined)(
  `virtio-9p sandboxes${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const root = mkdtempSync(join(tmpdir(), 'kapsel-root-'));
    const work = mkdtempSync(join(tmpdir(), 'kapsel-9p-'));
    const templateDir = join(work, 'templates');
    let restoreEnv = (): void => undefined;
    const k = (...args: string[]): ReturnType<typeof kapsel> => kapsel(['--root', root, ...args]);
    let ids: string[] = [];
    beforeAll(() => {
      restoreEnv = overrideEnv({
        KAPSEL_TEMPLATE: 'on',
        KAPSEL_TEMPLATE_DIR: templateDir,
        KAPSEL_SHARED_FS: 'virtio-9p',
      });
    });
    afterEach(async () => {
      for (const id of ids) await k('delete', '--force', id);
      ids = [];
      process.env['KAPSEL_TEMPLATE'] = 'on';
    });
    afterAll(() => {
      restoreEnv();
      removeBundles();
      rmSync(root, { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
    });

    function expectNothingLeft(id: string): void {
      expect(processesMentioning(vmDirOf(root, id))).toEqual([]);
      expect(existsSync(vmDirOf(root, id))).toBe(false);
      expect(existsSync(join(root, id))).toBe(false);
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(root);
    }

    it('starts from its template over 9p: files, owners and links reach the host, no virtiofsd, no copy of the RAM', async () => {
      const id = 'nine-basic';
      ids.push(id);
      const vol = mkdtempSync(join(work, 'vol-'));
      writeFileSync(join(vol, 'in.txt'), 'from the host\n');
      const b = makeBundle((s) => {
        shSpec(
          s,
          [
            'cat /data/in.txt',
            'echo from-guest > /data/out.txt',
            'chown 1234:5678 /data/out.txt',
            'mkdir -m 0750 /data/d',
            'ln -s out.txt /data/link',
            'exec sleep 600',
          ].join('; '),
          vol,
        );
        // The default spec's capabilities (runc spec's) have no CAP_CHOWN.
        const caps = s.process?.capabilities;
        if (caps !== undefined) {
          for (const set of ['bounding', 'effective', 'permitted'] as const) {
            caps[set] = [...(caps[set] ?? []), 'CAP_CHOWN'];
          }
        }
      });
      const r = await kapselToFiles(['--root', root, 'run', '-d', '--bundle', b, id], work);
      expect(r.stderr()).toBe('');
      expect(r.code).toBe(0);
      const [key] = templates(templateDir);
      expect(key).toBeDefined();
      const ram = join(templateDir, key ?? '', 'ram');
      const before = statSync(ram, { bigint: true });

      const mounts = await k('exec', id, 'sh', '-c', 'cat /proc/self/mountinfo');
      expect(mounts.stderr).toBe('');
      const data = mounts.stdout.split('\n').find((l) => l.split(' ')[4] === '/data');
      expect(data, mounts.stdout).toMatch(/ - 9p kapsel-shared .*trans=virtio/);
      const out = await k('exec', id, 'sh', '-c', 'cat /data/out.txt; stat -c %u:%g:%a /data/d');
      expect(out.stdout).toBe('from-guest\n0:0:750\n');
      const st = statSync(join(vol, 'out.txt'));
      expect([st.uid, st.gid]).toEqual([1234, 5678]);
      expect(readFileSync(join(vol, 'out.txt'), 'utf8')).toBe('from-guest\n');
      expect(lstatSync(join(vol, 'link')).isSymbolicLink()).toBe(true);
      expect(readlinkSync(join(vol, 'link'))).toBe('out.txt');
      expect(statSync(join(vol, 'd')).mode & 0o777).toBe(0o750);

      // QEMU serves the share itself, maps the template's file privately,
      // and has no balloon (a guest's request would punch the template).
      const qemu = qemuPidOf(root, id);
      const cmd = readFileSync(`/proc/${String(qemu)}/cmdline`, 'utf8').split('\0');
      expect(cmd.join(' ')).toContain(`mem-path=${ram},share=off`);
      expect(cmd.join(' ')).not.toContain('virtio-balloon');
      expect(processesMentioning('virtiofsd').filter((p) => p.includes(root))).toEqual([]);
      expect(mappingOf(qemu, ram)?.['perms rw-p']).toBe(1);
      expect(
        readdirSync(`/proc/${String(qemu)}/fd`).map((fd) => {
          try {
            return readlinkSync(`/proc/${String(qemu)}/fd/${fd}`);
          } catch {
            return '';
          }
        }),
      ).not.toContainEqual(expect.stringMatching(/^\/dev\/shm\//));

      expect((await k('delete', '--force', id)).code).toBe(0);
      ids = [];
      expectNothingLeft(id);
      // The clone wrote only its own copies: the template's file is as saved.
      const after = statSync(ram, { bigint: true });
      expect([after.size, after.blocks, after.mtimeNs, after.ctimeNs]).toEqual([
        before.size,
        before.blocks,
        before.mtimeNs,
        before.ctimeNs,
      ]);
      expect(templates(templateDir)).toEqual([key]);
    });

    it('two clones share the pages of the template they did not write, and draw different random bytes', async () => {
      const vol = mkdtempSync(join(work, 'vol-'));
      const pids: number[] = [];
      for (const id of ['nine-a', 'nine-b']) {
        ids.push(id);
        const b = makeBundle((s) => {
          shSpec(
            s,
            `head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > /data/${id}; exec sleep 600`,
            vol,
          );
        });
        const r = await kapselToFiles(['--root', root, 'run', '-d', '--bundle', b, id], work);
        expect(r.stderr()).toBe('');
        expect(r.code).toBe(0);
        pids.push(qemuPidOf(root, id));
      }
      const [key] = templates(templateDir);
      const ram = join(templateDir, key ?? '', 'ram');
      for (const pid of pids) {
        const m = mappingOf(pid, ram);
        expect(m).toBeDefined();
        // Pages both QEMUs map from the page cache: the kernel, the agent...
        // (dirty while the template's file is not yet written back).
        expect((m?.['Shared_Clean'] ?? 0) + (m?.['Shared_Dirty'] ?? 0)).toBeGreaterThan(8 * 1024);
        // ...and far fewer of the clone's own, written since the restore.
        expect(m?.['Private_Dirty'] ?? 0).toBeLessThan(m?.['Rss'] ?? 0);
      }
      let rnd: string[] = [];
      for (let i = 0; i < 100 && rnd.length < 2; i++) {
        rnd = ['nine-a', 'nine-b'].flatMap((id) => {
          const f = join(vol, id);
          return existsSync(f) && statSync(f).size === 64 ? [readFileSync(f, 'utf8')] : [];
        });
        if (rnd.length < 2) await new Promise((r) => setTimeout(r, 100));
      }
      expect(rnd).toHaveLength(2);
      expect(rnd[0]).toMatch(/^[0-9a-f]{64}$/);
      expect(rnd[0]).not.toBe(rnd[1]);
      for (const id of ['nine-a', 'nine-b']) {
        expect((await k('delete', '--force', id)).code).toBe(0);
      }
      ids = [];
      expectNothingLeft('nine-a');
      expectNothingLeft('nine-b');
    });

    it('boots cold over 9p with KAPSEL_TEMPLATE=off', async () => {
      process.env['KAPSEL_TEMPLATE'] = 'off';
      const vol = mkdtempSync(join(work, 'vol-'));
      writeFileSync(join(vol, 'in.txt'), 'cold\n');
      const b = makeBundle((s) => {
        shSpec(s, 'grep -c " /data 9p " /proc/mounts; cat /data/in.txt; exit 3', vol);
      });
      const r = await k('run', '--bundle', b, 'nine-cold');
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('1\ncold\n');
      expect(r.code).toBe(3);
      expectNothingLeft('nine-cold');
    });
  },
);
