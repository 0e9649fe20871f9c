// Spec-level compatibility that needs no VM: `kapsel spec` against `runc
// spec`, and refusals made on the host before any QEMU starts, each with
// runc run on the same bundle where it applies.
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Spec } from '../../oci/spec.js';
import { vmDirOf } from '../../runtime/src/sandbox/vm-dir.js';
import { RUNC, runCommand } from '../support/engines.js';
import { DEFAULT_BUNDLE, kapsel, processesMentioning, ROOT } from '../support/kapsel-cli.js';

const skip =
  process.getuid?.() !== 0
    ? 'needs root'
    : !existsSync(join(ROOT, 'build/dist/kapsel.mjs')) ||
        !existsSync(join(DEFAULT_BUNDLE, 'config.json'))
      ? 'build/ missing (run scripts/setup.sh)'
      : !existsSync(RUNC)
        ? `${RUNC} missing`
        : undefined;

describe.skipIf(skip !== undefined)(
  `spec compatibility on the host${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const work = mkdtempSync(join(tmpdir(), 'kapsel-speccompat-'));
    const root = join(work, 'kapsel-root');
    const runcRoot = join(work, 'runc-root');
    let n = 0;
    afterAll(() => {
      rmSync(work, { recursive: true, force: true });
    });

    /** A bundle with its own copy of the default rootfs, so the rootfs can be changed. */
    function bundle(
      edit: (s: Spec) => void,
      rootfsEdit: (rootfs: string) => void = () => undefined,
    ): string {
      const dir = join(work, `bundle-${++n}`);
      mkdirSync(dir);
      cpSync(join(DEFAULT_BUNDLE, 'rootfs'), join(dir, 'rootfs'), {
        recursive: true,
        verbatimSymlinks: true,
      });
      rootfsEdit(join(dir, 'rootfs'));
      const spec = JSON.parse(readFileSync(join(DEFAULT_BUNDLE, 'config.json'), 'utf8')) as Spec;
      spec.root = { path: 'rootfs', readonly: true };
      if (spec.process) spec.process.args = ['true'];
      edit(spec);
      writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
      return dir;
    }

    async function runc(dir: string): Promise<{ code: number | null; stderr: string }> {
      const id = `runc-${n}`;
      const r = await runCommand(RUNC, ['--root', runcRoot, 'run', '--bundle', dir, id]);
      await runCommand(RUNC, ['--root', runcRoot, 'delete', '-f', id]);
      return r;
    }

    /** kapsel create, timed, and proof that nothing was started or left for it. */
    async function refusedBeforeBoot(dir: string): Promise<{ stderr: string; ms: number }> {
      const id = `refused-${n}`;
      const t0 = Date.now();
      const r = await kapsel(['--root', root, 'create', '--bundle', dir, id]);
      const ms = Date.now() - t0;
      expect(r.code).toBe(1);
      expect(processesMentioning(vmDirOf(root, id))).toEqual([]);
      expect(processesMentioning(join(root, id))).toEqual([]);
      expect(existsSync(vmDirOf(root, id))).toBe(false);
      expect(existsSync(join(root, id))).toBe(false);
      // Logfmt escapes the quotes in runc's messages, as runc's own log does.
      return { stderr: r.stderr.replaceAll('\\"', '"'), ms };
    }

    it('`kapsel spec` writes what `runc spec` writes, field by field', async () => {
      const k = join(work, 'spec-kapsel');
      const r = join(work, 'spec-runc');
      mkdirSync(k);
      mkdirSync(r);
      expect((await kapsel(['spec', '--bundle', k])).code).toBe(0);
      expect((await runCommand(RUNC, ['spec', '--bundle', r])).code).toBe(0);
      const ks = JSON.parse(readFileSync(join(k, 'config.json'), 'utf8')) as Spec;
      const rs = JSON.parse(readFileSync(join(r, 'config.json'), 'utf8')) as Spec;
      // The documented differences (docs/compatibility.md): version, hostname,
      // and the cgroup namespace runc adds on a cgroup v2 host (the guest is one).
      expect(ks.hostname).toBe('kapsel');
      expect(ks.linux?.namespaces?.at(-1)).toEqual({ type: 'cgroup' });
      const rest = (s: Spec, drop: number): unknown => ({
        ...s,
        ociVersion: undefined,
        hostname: undefined,
        linux: {
          ...s.linux,
          namespaces: s.linux?.namespaces?.slice(0, s.linux.namespaces.length - drop),
        },
      });
      const runcHasCgroupns = rs.linux?.namespaces?.some((x) => x.type === 'cgroup') === true;
      expect(rest(ks, runcHasCgroupns ? 0 : 1)).toEqual(rest(rs, 0));
      expect(ks.process?.capabilities?.ambient).toEqual([
        'CAP_AUDIT_WRITE',
        'CAP_KILL',
        'CAP_NET_BIND_SERVICE',
      ]);
      // runc's layout too: tab-indented.
      expect(readFileSync(join(k, 'config.json'), 'utf8')).toMatch(/^\{\n\t"ociVersion"/);
    });

    it('refuses an unknown capability in under 2 s with no QEMU started', async () => {
      const dir = bundle((s) => s.process?.capabilities?.bounding?.push('CAP_NOPE'));
      const { stderr, ms } = await refusedBeforeBoot(dir);
      expect(stderr).toContain('process.capabilities.bounding[3]: unknown capability "CAP_NOPE"');
      expect(ms).toBeLessThan(2000);
    });

    it.each([
      [
        'mounts: [null]',
        (s: Spec) => ((s as unknown as { mounts: unknown[] }).mounts = [null]),
        'mounts[0]: must be an object, got null',
      ],
      [
        'mount options as a string',
        (s: Spec) => ((s.mounts?.[1] as unknown as { options: unknown }).options = 'nosuid'),
        'mounts[1].options: must be a list, got a string',
      ],
      [
        'namespaces as an object',
        (s: Spec) => ((s.linux as unknown as { namespaces: unknown }).namespaces = { type: 'pid' }),
        'linux.namespaces: must be a list, got an object',
      ],
    ])(
      'refuses %s naming the field, before booting; runc refuses it too',
      async (_name, edit, message) => {
        const dir = bundle(edit);
        const { stderr, ms } = await refusedBeforeBoot(dir);
        expect(stderr).toContain(message);
        expect(ms).toBeLessThan(2000);
        expect((await runc(dir)).code).not.toBe(0);
      },
    );

    it('refuses proc on a /proc that is a symlink, as runc does', async () => {
      const dir = bundle(
        () => undefined,
        (rootfs) => {
          rmSync(join(rootfs, 'proc'), { recursive: true });
          symlinkSync('/etc', join(rootfs, 'proc'));
        },
      );
      const message =
        'error mounting "proc" to rootfs at "/proc": filesystem "proc" must be mounted on ordinary directory';
      const r = await runc(dir);
      expect(r.code).not.toBe(0);
      expect(r.stderr.replaceAll('\\"', '"')).toContain(message);
      const { stderr } = await refusedBeforeBoot(dir);
      expect(stderr).toContain(message);
    });

    it('refuses a bind inside /proc, as runc does', async () => {
      const dir = bundle((s) => {
        s.mounts?.push({
          destination: '/proc/foo',
          type: 'bind',
          source: '/etc/hostname',
          options: ['bind'],
        });
      });
      const message = `error mounting "/etc/hostname" to rootfs at "/proc/foo": "${join(dir, 'rootfs', 'proc', 'foo')}" cannot be mounted because it is inside /proc`;
      const r = await runc(dir);
      expect(r.stderr.replaceAll('\\"', '"')).toContain(message);
      const { stderr } = await refusedBeforeBoot(dir);
      expect(stderr).toContain(message);
    });

    it('kill takes signal 0 and refuses bad signals after "does not exist", as runc', async () => {
      for (const sig of ['0', 'KILL', 'NOSUCH']) {
        const k = await kapsel(['--root', root, 'kill', 'ghost', sig]);
        const r = await runCommand(RUNC, ['--root', runcRoot, 'kill', 'ghost', sig]);
        expect(k.code).toBe(r.code);
        expect(k.stderr).toContain('container does not exist');
      }
    });
  },
);
