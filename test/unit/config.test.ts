import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { afterAll, describe, expect, it } from 'vitest';
import { Any } from '../../proto/generated/google/protobuf/any.js';
import { ConfigError, loadSettings } from '../../runtime/src/config/load.js';
import { SCHEMA } from '../../runtime/src/config/schema.js';
import { configPathOf } from '../../runtime/src/shimv2/options.js';
import { DEFAULT_SIZING } from '../../runtime/src/sandbox/sizing.js';
import {
  DEFAULT_TEMPLATE_DIR,
  DEFAULT_TEMPLATE_ENABLED,
} from '../../runtime/src/sandbox/template/settings.js';
import { DEFAULT_MACHINE, TCG_TB_MIB } from '../../runtime/src/sandbox/vm/config.js';
import { DEFAULT_READY_TIMEOUT_MS } from '../../runtime/src/config/schema.js';

const dir = mkdtempSync(join(tmpdir(), 'kapsel-config-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
/** A real file holding `text`; its path. */
function file(text: string): string {
  const path = join(dir, `c${n++}.toml`);
  writeFileSync(path, text);
  return path;
}

/** No default path exists: only what a test names is read. */
const none = [join(dir, 'absent.toml')];

describe('configuration file', () => {
  it('gives the defaults without any file, all from "default"', () => {
    const l = loadSettings({ env: {}, defaultPaths: none });
    expect(l.file).toBeUndefined();
    expect(l.settings).toEqual({
      hypervisor: {
        machine_type: DEFAULT_MACHINE,
        accel: 'auto',
        kernel: '',
        guest_image: 'pmem',
        initrd: '',
        kernel_params: '',
        default_memory: DEFAULT_SIZING.baseMemoryMiB,
        default_vcpus: DEFAULT_SIZING.baseCpus,
        default_maxvcpus: 0,
        shared_fs: 'virtio-fs',
        tcg_tb_mib: TCG_TB_MIB,
      },
      factory: { enable_template: DEFAULT_TEMPLATE_ENABLED, template_path: DEFAULT_TEMPLATE_DIR },
      runtime: { enable_debug: false, shim_log: '', ready_timeout: DEFAULT_READY_TIMEOUT_MS },
    });
    expect(new Set(Object.values(l.sources))).toEqual(new Set(['default']));
  });

  it('reads Kata-named sections and keys', () => {
    const path = file(`
# a comment
[hypervisor]
machine_type = "microvm"
accel = "tcg"
kernel = "/boot/vmlinux"
default_memory = 384
default_vcpus = 2
default_maxvcpus = 4
tcg_tb_mib = 32

[factory]
enable_template = ${String(!DEFAULT_TEMPLATE_ENABLED)}
template_path = "/srv/templates"

[runtime]
enable_debug = true
shim_log = "/var/log/kapsel-shim.log"
ready_timeout = "90s"
`);
    const l = loadSettings({ file: path, env: {}, defaultPaths: none });
    expect(l.file).toBe(path);
    expect(l.settings.hypervisor).toMatchObject({
      machine_type: 'microvm',
      accel: 'tcg',
      kernel: '/boot/vmlinux',
      default_memory: 384,
      default_vcpus: 2,
      default_maxvcpus: 4,
      tcg_tb_mib: 32,
    });
    expect(l.settings.factory).toEqual({
      enable_template: !DEFAULT_TEMPLATE_ENABLED,
      template_path: '/srv/templates',
    });
    expect(l.settings.runtime).toEqual({
      enable_debug: true,
      shim_log: '/var/log/kapsel-shim.log',
      ready_timeout: 90_000,
    });
    expect(l.sources['hypervisor.default_memory']).toBe('file');
    expect(l.sources['hypervisor.guest_image']).toBe('default');
  });

  it('takes the environment over the file over the default', () => {
    const path = file('[hypervisor]\ndefault_memory = 384\ndefault_vcpus = 2\n');
    const l = loadSettings({
      file: path,
      env: { KAPSEL_VM_BASE_MEMORY_MIB: '512', KAPSEL_VM_BASE_CPUS: '', KAPSEL_TEMPLATE: 'on' },
      defaultPaths: none,
    });
    expect(l.settings.hypervisor.default_memory).toBe(512);
    expect(l.sources['hypervisor.default_memory']).toBe('env');
    // An empty variable is unset: the file's value stands.
    expect(l.settings.hypervisor.default_vcpus).toBe(2);
    expect(l.sources['hypervisor.default_vcpus']).toBe('file');
    expect(l.settings.factory.enable_template).toBe(true);
    expect(l.settings.hypervisor.tcg_tb_mib).toBe(TCG_TB_MIB);
    expect(l.sources['hypervisor.tcg_tb_mib']).toBe('default');
    for (const [v, want] of [
      ['off', false],
      ['0', false],
      ['false', false],
      ['on', true],
      ['1', true],
      ['true', true],
    ] as const) {
      expect(
        loadSettings({ env: { KAPSEL_TEMPLATE: v }, defaultPaths: none }).settings.factory,
      ).toMatchObject({ enable_template: want });
    }
  });

  it('finds the file by KAPSEL_CONFIG, and --config wins over it', () => {
    const a = file('[hypervisor]\ndefault_memory = 300\n');
    const b = file('[hypervisor]\ndefault_memory = 400\n');
    expect(loadSettings({ env: { KAPSEL_CONFIG: a }, defaultPaths: none }).file).toBe(a);
    const l = loadSettings({ file: b, env: { KAPSEL_CONFIG: a }, defaultPaths: none });
    expect(l.settings.hypervisor.default_memory).toBe(400);
  });

  it('reads the first default path that exists, and none is fine', () => {
    const present = file('[runtime]\nenable_debug = true\n');
    const l = loadSettings({ env: {}, defaultPaths: [join(dir, 'nope.toml'), present] });
    expect(l.file).toBe(present);
    expect(l.settings.runtime.enable_debug).toBe(true);
  });

  it('treats "" for a path as its default', () => {
    const l = loadSettings({
      file: file('[factory]\ntemplate_path = ""\n'),
      env: {},
      defaultPaths: none,
    });
    expect(l.settings.factory.template_path).toBe(DEFAULT_TEMPLATE_DIR);
  });

  const refusals: [string, string, RegExp][] = [
    [
      'unknown key',
      '[hypervisor]\ndefault_memroy = 512\n',
      /: unknown key hypervisor\.default_memroy \(keys of \[hypervisor\]: machine_type, /,
    ],
    [
      'unknown section',
      '[hypervisr]\nmachine_type = "q35"\n',
      /: unknown section "hypervisr" \(sections: hypervisor, factory, runtime\)/,
    ],
    ['top-level key', 'debug = true\n', /: unknown key "debug"/],
    [
      'section as a value',
      'hypervisor = 1\n',
      /: hypervisor: expected a table \[hypervisor\], got 1/,
    ],
    [
      'string for an integer',
      '[hypervisor]\ndefault_memory = "512"\n',
      /: hypervisor\.default_memory: expected a positive integer of MiB, got "512"/,
    ],
    [
      'float for an integer',
      '[hypervisor]\ndefault_vcpus = 1.5\n',
      /: hypervisor\.default_vcpus: expected a positive integer, got 1\.5/,
    ],
    [
      'zero memory',
      '[hypervisor]\ndefault_memory = 0\n',
      /hypervisor\.default_memory: expected a positive integer of MiB, got 0/,
    ],
    [
      'unknown machine',
      '[hypervisor]\nmachine_type = "pc"\n',
      /hypervisor\.machine_type: expected one of "q35", "microvm", got "pc"/,
    ],
    [
      'string for a boolean',
      '[factory]\nenable_template = "yes"\n',
      /factory\.enable_template: expected a boolean .*, got "yes"/,
    ],
    [
      'relative path',
      '[factory]\ntemplate_path = "templates"\n',
      /factory\.template_path: expected an absolute path .*, got "templates"/,
    ],
    [
      'date',
      '[runtime]\nshim_log = 1979-05-27\n',
      /runtime\.shim_log: expected an absolute path .*, got the date 1979-05-27/,
    ],
    [
      'duration without a unit',
      '[runtime]\nready_timeout = "90"\n',
      /runtime\.ready_timeout: expected a positive duration such as "90s" or "2m", got "90"/,
    ],
    [
      'zero duration',
      '[runtime]\nready_timeout = "0s"\n',
      /runtime\.ready_timeout: expected a positive duration .*, got "0s"/,
    ],
    ['bad TOML', '[hypervisor]\ndefault_memory = \n', /: line 2, column \d+: /],
  ];
  it.each(refusals)('refuses a %s, naming the file and the key', (_what, text, message) => {
    const path = file(text);
    const load = (): unknown => loadSettings({ file: path, env: {}, defaultPaths: none });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(`config ${path}: `);
    expect(load).toThrow(message);
  });

  it('lists every mistake of a file in one error', () => {
    const path = file('[hypervisor]\ndefault_memory = "1G"\nfoo = 1\n');
    expect(() => loadSettings({ file: path, env: {}, defaultPaths: none })).toThrow(
      /default_memory: expected .*; unknown key hypervisor\.foo/,
    );
  });

  it('refuses a named file that does not exist, and a default one it cannot read', () => {
    const missing = join(dir, 'missing.toml');
    expect(() => loadSettings({ file: missing, env: {}, defaultPaths: none })).toThrow(
      `config ${missing}: no such file`,
    );
    expect(() => loadSettings({ env: { KAPSEL_CONFIG: missing }, defaultPaths: none })).toThrow(
      `config ${missing}: no such file`,
    );
    // A directory at the default path cannot be read as a file.
    expect(() => loadSettings({ env: {}, defaultPaths: [dir] })).toThrow(`config ${dir}: `);
  });

  it('refuses an environment override that is not a value, naming the variable', () => {
    const cases: [Record<string, string>, string][] = [
      [{ KAPSEL_VM_BASE_CPUS: '0' }, 'KAPSEL_VM_BASE_CPUS: expected a positive integer, got "0"'],
      [
        { KAPSEL_VM_BASE_MEMORY_MIB: '1G' },
        'KAPSEL_VM_BASE_MEMORY_MIB: expected a positive integer of MiB, got "1G"',
      ],
      [{ KAPSEL_MACHINE: 'pc' }, 'KAPSEL_MACHINE: expected one of "q35", "microvm", got "pc"'],
      [{ KAPSEL_ACCEL: 'hvf' }, 'KAPSEL_ACCEL: expected one of "auto", "kvm", "tcg", got "hvf"'],
      [{ KAPSEL_TEMPLATE: 'yes' }, 'KAPSEL_TEMPLATE: expected a boolean'],
      [{ KAPSEL_SHARED_FS: '9p' }, 'KAPSEL_SHARED_FS: expected one of "virtio-fs", "virtio-9p"'],
      [{ KAPSEL_TEMPLATE_DIR: 'rel' }, 'KAPSEL_TEMPLATE_DIR: expected an absolute path'],
    ];
    for (const [env, message] of cases) {
      expect(() => loadSettings({ env, defaultPaths: none })).toThrow(message);
    }
  });

  it('ships an example file that sets every key and loads', () => {
    const example = join(import.meta.dirname, '../../config/kapsel.toml.example');
    const l = loadSettings({ file: example, env: {}, defaultPaths: none });
    for (const [section, keys] of Object.entries(SCHEMA)) {
      for (const key of Object.keys(keys)) expect(l.sources[`${section}.${key}`]).toBe('file');
    }
  });
});

describe('containerd runtime options', () => {
  /** An Any as containerd's typeurl marshals runtimeoptions.v1.Options{TypeUrl, ConfigPath}. */
  const encoded = (typeUrl: string, configPath: string): Uint8Array => {
    const value = new BinaryWriter().uint32(10).string('').uint32(18).string(configPath).finish();
    return Any.encode({ typeUrl, value: Buffer.from(value) }).finish();
  };

  it('reads ConfigPath of runtimeoptions.v1.Options, and nothing of other types', () => {
    expect(configPathOf(encoded('runtimeoptions.v1.Options', '/etc/kapsel/pod.toml'))).toBe(
      '/etc/kapsel/pod.toml',
    );
    expect(configPathOf(encoded('type.googleapis.com/runtimeoptions.v1.Options', '/x.toml'))).toBe(
      '/x.toml',
    );
    expect(configPathOf(encoded('runtimeoptions.v1.Options', ''))).toBeUndefined();
    expect(configPathOf(encoded('containerd.runc.v1.Options', '/x.toml'))).toBeUndefined();
  });
});
