import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCHEMA } from '../../runtime/src/config/schema.js';
import { vmDirLayout, vmDirOf } from '../../runtime/src/sandbox/vm-dir.js';
import {
  kapsel,
  kapselToFiles,
  makeBundle,
  processesMentioning,
  removeBundles,
  vmMissing,
} from '../support/kapsel-cli.js';

const skip = vmMissing();

/** Every variable that overrides a key: unset here, so the file decides. */
const OVERRIDES = [
  'KAPSEL_CONFIG',
  ...Object.values(SCHEMA).flatMap((keys) =>
    Object.values(keys).flatMap((k: { env?: string }) => (k.env === undefined ? [] : [k.env])),
  ),
];

describe.skipIf(skip !== undefined)(
  `configuration file with a real VM${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const root = mkdtempSync(join(tmpdir(), 'kapsel-root-'));
    const work = mkdtempSync(join(tmpdir(), 'kapsel-config-'));
    const saved = new Map(OVERRIDES.map((name) => [name, process.env[name]]));

    beforeAll(() => {
      for (const name of OVERRIDES) Reflect.deleteProperty(process.env, name);
    });
    afterAll(() => {
      for (const [name, value] of saved) {
        if (value === undefined) Reflect.deleteProperty(process.env, name);
        else process.env[name] = value;
      }
      removeBundles();
      rmSync(root, { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
    });

    const bundle = (args: string[]): string =>
      makeBundle((spec) => {
        if (spec.process) {
          spec.process.terminal = false;
          spec.process.args = args;
        }
      });

    it('sizes and boots the sandbox as the file says, in the CLI and in the sandbox process', async () => {
      const config = join(work, 'config.toml');
      // Neither is the default: 384 MiB (1024) is decided by the CLI and seen
      // in the guest's MemTotal; the TCG buffer (64) by the sandbox process,
      // which reads the same file, and seen on QEMU's command line.
      writeFileSync(
        config,
        [
          '[hypervisor]',
          'default_memory = 384',
          'tcg_tb_mib = 32',
          'kernel_params = " kapsel.cfgtest=1  "',
          '[factory]',
          'enable_template = false',
          '[runtime]',
          'enable_debug = true',
          '',
        ].join('\n'),
      );
      const log = join(work, 'kapsel.log');
      const r = await kapselToFiles(
        [
          '--root',
          root,
          '--config',
          config,
          '--log',
          log,
          'run',
          '-d',
          '-b',
          bundle(['sleep', '600']),
          'cfg1',
        ],
        work,
      );
      expect(r.code, r.stderr()).toBe(0);
      const vmDir = vmDirOf(root, 'cfg1');
      try {
        const meminfo = await kapsel(['--root', root, 'exec', 'cfg1', 'cat', '/proc/meminfo']);
        expect(meminfo.code, meminfo.stderr).toBe(0);
        const memTotalKiB = Number(/MemTotal:\s+(\d+) kB/.exec(meminfo.stdout)?.[1]);
        // The kernel keeps some of the RAM for itself; the rest is reported.
        expect(memTotalKiB).toBeGreaterThan(256 * 1024);
        expect(memTotalKiB).toBeLessThanOrEqual(384 * 1024);
        const qemu = processesMentioning(vmDir).filter((p) => p.includes('qemu-system'));
        expect(qemu).toHaveLength(1);
        expect(qemu[0]).toContain('tb-size=32');
        expect(qemu[0]).toMatch(/ kapsel\.cfgtest=1( |$)/);

        // enable_debug from the file, without --debug: each process logs the
        // effective settings and their sources once, and the cold boot's phases.
        const lines = readFileSync(log, 'utf8').split('\n');
        const effective = lines.filter((l) => l.includes('msg="effective settings"'));
        expect(effective).toHaveLength(1);
        expect(effective[0]).toContain(`config="${config}"`);
        expect(effective[0]).toContain('hypervisor.default_memory="384 (file)"');
        expect(effective[0]).toContain('factory.enable_template="false (file)"');
        expect(effective[0]).toContain('hypervisor.machine_type="q35 (default)"');
        const monitor = readFileSync(vmDirLayout(vmDir).log, 'utf8');
        expect(monitor).toContain('hypervisor.tcg_tb_mib="32 (file)"');
        const timeline = lines.filter((l) => l.includes('boot timeline (ms)')).at(-1) ?? '';
        expect(timeline).toContain('initStarted=');
        expect(timeline).not.toContain('restored=');
      } finally {
        const d = await kapsel(['--root', root, 'delete', '--force', 'cfg1']);
        expect(d.code, d.stderr).toBe(0);
      }
      expect(processesMentioning(vmDir)).toEqual([]);
    });

    it('fails `run` on a bad file with the file, the key and what was expected, and leaves nothing', async () => {
      const config = join(work, 'bad.toml');
      writeFileSync(config, '[hypervisor]\ndefault_memory = "384M"\n');
      const log = join(work, 'bad.log');
      const r = await kapselToFiles(
        [
          '--root',
          root,
          '--config',
          config,
          '--log',
          log,
          '--log-format',
          'json',
          'run',
          '-b',
          bundle(['true']),
          'cfg2',
        ],
        work,
      );
      const message = `config ${config}: hypervisor.default_memory: expected a positive integer of MiB, got "384M"`;
      expect(r.code).toBe(1);
      expect(r.stderr()).toBe(`kapsel: ${message}\n`);
      // The line containerd shows its user: the log's last error.
      const last = readFileSync(log, 'utf8').trim().split('\n').at(-1) ?? '{}';
      expect(JSON.parse(last)).toMatchObject({ level: 'error', msg: message });
      const list = await kapsel(['--root', root, 'list', '-q']);
      expect(list.stdout.split('\n')).not.toContain('cfg2');
      expect(existsSync(vmDirOf(root, 'cfg2'))).toBe(false);
      expect(existsSync(join(root, 'cfg2'))).toBe(false);
      expect(processesMentioning(root)).toEqual([]);
    });

    it('fails on a named file that does not exist, from --config or KAPSEL_CONFIG', async () => {
      const missing = join(work, 'missing.toml');
      const byFlag = await kapsel([
        '--root',
        root,
        '--config',
        missing,
        'create',
        '-b',
        bundle(['true']),
        'cfg3',
      ]);
      expect(byFlag.code).toBe(1);
      expect(byFlag.stderr).toContain(`config ${missing}: no such file`);
      process.env['KAPSEL_CONFIG'] = missing;
      try {
        const byEnv = await kapsel(['--root', root, 'create', '-b', bundle(['true']), 'cfg3']);
        expect(byEnv.code).toBe(1);
        expect(byEnv.stderr).toContain(`config ${missing}: no such file`);
      } finally {
        Reflect.deleteProperty(process.env, 'KAPSEL_CONFIG');
      }
      expect(existsSync(vmDirOf(root, 'cfg3'))).toBe(false);
    });
  },
);
