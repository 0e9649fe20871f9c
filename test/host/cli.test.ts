import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Spec } from '../../oci/spec.js';
import { RUNC, runCommand } from '../support/engines.js';
import { KAPSEL, kapsel, processesMentioning, ROOT } from '../support/kapsel-cli.js';

const skip = existsSync(join(ROOT, 'build/dist/kapsel.mjs'))
  ? undefined
  : 'build/dist/kapsel.mjs missing (run scripts/setup.sh)';

describe.skipIf(skip !== undefined)(
  `the kapsel command line${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const root = mkdtempSync(join(tmpdir(), 'kapsel-root-'));
    const dirs: string[] = [];
    const tempDir = (): string => {
      const d = mkdtempSync(join(tmpdir(), 'kapsel-cli-'));
      dirs.push(d);
      return d;
    };
    afterAll(() => {
      for (const d of [root, ...dirs]) rmSync(d, { recursive: true, force: true });
    });

    it('prints its version', async () => {
      const r = await kapsel(['--version']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^kapsel version \d+\.\d+\.\d+/);
      expect(r.stdout).toContain('spec: 1.2.0');
    });

    it('writes a default spec like runc spec, and refuses to overwrite it', async () => {
      const dir = tempDir();
      const r = await kapsel(['spec', '--bundle', dir]);
      expect(r.code).toBe(0);
      const spec = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Spec;
      expect(spec.ociVersion).toBe('1.2.0');
      expect(spec.root).toEqual({ path: 'rootfs', readonly: true });
      expect(spec.process?.args).toEqual(['sh']);
      expect(spec.linux?.namespaces?.map((n) => n.type).sort()).toEqual([
        'cgroup',
        'ipc',
        'mount',
        'network',
        'pid',
        'uts',
      ]);
      const again = await kapsel(['spec', '--bundle', dir]);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain('File config.json exists. Remove it first');
    });

    it('says a container does not exist, as runc does', async () => {
      for (const verb of [
        ['state', 'ghost'],
        ['delete', 'ghost'],
        ['start', 'ghost'],
        ['kill', 'ghost', 'KILL'],
        ['exec', 'ghost', 'true'],
        ['ps', 'ghost'],
        ['pause', 'ghost'],
        ['resume', 'ghost'],
        ['update', '--pids-limit', '5', 'ghost'],
        ['events', '--stats', 'ghost'],
      ]) {
        const r = await kapsel(['--root', root, ...verb]);
        // runc's exec.go reports every failure as "exec failed: ..." and exits 255.
        expect(r.code).toBe(verb[0] === 'exec' ? 255 : 1);
        expect(r.stderr).toContain(
          verb[0] === 'exec' ? 'exec failed: container does not exist' : 'container does not exist',
        );
      }
      if (existsSync(RUNC)) {
        const runc = await runCommand(RUNC, ['--root', root, 'exec', 'ghost', 'true']);
        expect(runc.code).toBe(255);
        expect(runc.stderr).toContain('exec failed: container does not exist');
      }
    });

    it('lists no containers, in table, json and quiet form', async () => {
      const empty = mkdtempSync(join(tmpdir(), 'kapsel-root-'));
      dirs.push(empty);
      expect((await kapsel(['--root', empty, 'list'])).stdout).toMatch(
        /^ID\s+PID\s+STATUS\s+BUNDLE\s+CREATED\s+OWNER\n$/,
      );
      expect((await kapsel(['--root', empty, 'list', '--format', 'json'])).stdout).toBe('null\n');
      expect((await kapsel(['--root', empty, 'list', '-q'])).stdout).toBe('');
    });

    it("prints its features in runc's shape", async () => {
      const r = await kapsel(['features']);
      expect(r.code).toBe(0);
      const f = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(f).toMatchObject({ ociVersionMin: '1.0.0', ociVersionMax: '1.2.0' });
      expect(f['hooks']).toContain('createRuntime');
    });

    it('delete --force of a container that does not exist succeeds, as with runc', async () => {
      const r = await kapsel(['--root', root, 'delete', '--force', 'ghost']);
      expect(r.code).toBe(0);
      expect(r.stderr).toBe('');
    });

    it('refuses --preserve-fds it cannot honour in a VM, before anything starts', async () => {
      const r = await kapsel([
        '--root',
        root,
        'create',
        '--preserve-fds',
        '2',
        '--bundle',
        tempDir(),
        'pfd',
      ]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('--preserve-fds 2');
      expect(existsSync(join(root, 'pfd'))).toBe(false);
    });

    it('writes errors to --log as JSON lines containerd can read', async () => {
      const log = join(tempDir(), 'log.json');
      const r = await kapsel([
        '--root',
        root,
        '--log',
        log,
        '--log-format',
        'json',
        'state',
        'ghost',
      ]);
      expect(r.code).toBe(1);
      const last = JSON.parse(readFileSync(log, 'utf8').trim().split('\n').at(-1) ?? '') as Record<
        string,
        unknown
      >;
      expect(last).toMatchObject({ level: 'error', msg: 'container does not exist' });
    });

    // Node 20's recursive mkdir spun forever here (ENOENT under /proc, which
    // exists); runc answers at once with Go's os.MkdirAll error.
    it("a --root it cannot make fails at once in runc's words, for list and run", async () => {
      const bundle = tempDir();
      expect((await kapsel(['spec', '--bundle', bundle])).code).toBe(0);
      const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as Spec;
      spec.root = { path: '/', readonly: true };
      writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
      const bad = '/proc/kapsel-x';
      const words = `mkdir ${bad}: no such file or directory`;
      for (const args of [['list'], ['run', '--bundle', bundle, 'never']]) {
        const r = await kapsel(['--root', bad, ...args]);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(words);
        if (existsSync(RUNC)) {
          const runc = await runCommand(RUNC, ['--root', bad, ...args]);
          expect(runc.code).toBe(1);
          expect(runc.stderr).toContain(words);
        }
      }
      expect(processesMentioning('never')).toEqual([]);
    });

    // runc's tty.go takes over the caller's terminal (stderr, stdout, stdin,
    // else /dev/tty); with none it fails before it creates anything. Run
    // under setsid with pipes: no terminal at all.
    it("a foreground run with a terminal and no host terminal fails in runc's words", async () => {
      const bundle = tempDir();
      expect((await kapsel(['spec', '--bundle', bundle])).code).toBe(0);
      const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as Spec;
      spec.root = { path: '/', readonly: true };
      if (spec.process !== undefined)
        spec.process = { ...spec.process, terminal: true, args: ['true'] };
      writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
      const words = 'open /dev/tty: no such device or address';
      // Its own session, so no controlling terminal; pipes for stdio.
      const runWithoutTty = (binary: string, runtimeRoot: string): ReturnType<typeof runCommand> =>
        runCommand('setsid', [
          '-w',
          binary,
          '--root',
          runtimeRoot,
          'run',
          '--bundle',
          bundle,
          'notty',
        ]);
      const r = await runWithoutTty(KAPSEL, root);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(words);
      expect((await kapsel(['--root', root, 'list', '-q'])).stdout.trim()).toBe('');
      expect(processesMentioning('notty')).toEqual([]);
      if (existsSync(RUNC)) {
        const runc = await runWithoutTty(RUNC, tempDir());
        expect(runc.code).toBe(1);
        expect(runc.stderr).toContain(words);
      }
    });

    it('refuses an invalid container id', async () => {
      const r = await kapsel(['--root', root, 'state', '../etc']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('invalid container id format');
    });

    it.each<[string, (dir: string) => void, string]>([
      ['no config.json', () => undefined, 'cannot read config.json'],
      [
        'bad JSON',
        (d) => {
          writeFileSync(join(d, 'config.json'), '{');
        },
        'not valid JSON',
      ],
      [
        'a missing rootfs',
        (d) => {
          writeFileSync(
            join(d, 'config.json'),
            JSON.stringify({
              ociVersion: '1.2.0',
              root: { path: 'nope' },
              process: { args: ['sh'], cwd: '/', user: { uid: 0, gid: 0 } },
            }),
          );
        },
        'root.path',
      ],
      [
        'empty args',
        (d) => {
          writeFileSync(
            join(d, 'config.json'),
            JSON.stringify({
              ociVersion: '1.2.0',
              root: { path: '/' },
              process: { args: [], cwd: '/', user: { uid: 0, gid: 0 } },
            }),
          );
        },
        'process.args',
      ],
    ])('run refuses a bundle with %s before booting anything', async (_name, make, text) => {
      const dir = tempDir();
      make(dir);
      const r = await kapsel(['--root', root, 'run', '--bundle', dir, 'broken']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(text);
      expect(existsSync(join(root, 'broken'))).toBe(false);
      expect(processesMentioning(join(root, 'broken'))).toEqual([]);
    });
  },
);
