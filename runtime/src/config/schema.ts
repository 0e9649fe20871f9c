// Every key of kapsel's configuration file: its section, type, default and
// the environment variable that overrides it. Sections and key names follow
// Kata Containers' configuration.toml where a key means the same thing
// (docs/configuration.md lists each with its Kata counterpart).
import { goDurationMs } from '../args/duration.js';
import { DEFAULT_SIZING } from '../sandbox/sizing.js';
import { DEFAULT_TEMPLATE_DIR, DEFAULT_TEMPLATE_ENABLED } from '../sandbox/template/settings.js';
import { DEFAULT_MACHINE, DEFAULT_SHARED_FS, TCG_TB_MIB } from '../sandbox/vm/config.js';

/**
 * How long a start waits for its sandbox to become ready
 * (sys/ready-deadline.ts) unless runtime.ready_timeout says otherwise.
 * A cold boot to agent-ready takes 20-40 s under TCG on this machine kind
 * with other VMs booting alongside (2 cores, no KVM; docs/faults.md), and a
 * template made on first use is one such boot plus its save and a restore:
 * 3x the slowest cold boot leaves room for both without letting a hung boot
 * hold a creator for long. Under KVM a boot takes a second or two.
 */
export const DEFAULT_READY_TIMEOUT_MS = 120_000;

/** One key: how a TOML value or an environment string becomes its value. */
export interface Key<T> {
  readonly default: T;
  /** The environment variable that overrides the file (empty = unset). */
  readonly env?: string;
  /** What a right value looks like, for error messages. */
  readonly expected: string;
  /** The value of a TOML value, or undefined when it has the wrong type or range. */
  fromToml(v: unknown): T | undefined;
  /** The value of an environment string, or undefined when it is not one. */
  fromEnv(s: string): T | undefined;
}

function int(def: number, min: number, expected: string, env?: string): Key<number> {
  // smol-toml gives integers as number (bigint only past 2^53, never valid here).
  const ok = (n: number): number | undefined => (Number.isInteger(n) && n >= min ? n : undefined);
  return {
    default: def,
    ...(env === undefined ? {} : { env }),
    expected,
    fromToml: (v) => (typeof v === 'number' ? ok(v) : undefined),
    fromEnv: (s) => (/^\s*\d+\s*$/.test(s) ? ok(Number(s)) : undefined),
  };
}

function bool(def: boolean, env?: string): Key<boolean> {
  return {
    default: def,
    ...(env === undefined ? {} : { env }),
    expected: 'a boolean (true or false; the environment takes on/off/1/0 too)',
    fromToml: (v) => (typeof v === 'boolean' ? v : undefined),
    fromEnv: (s) =>
      ['on', '1', 'true'].includes(s)
        ? true
        : ['off', '0', 'false'].includes(s)
          ? false
          : undefined,
  };
}

function oneOf<T extends string>(values: readonly T[], def: T, env?: string): Key<T> {
  const pick = (v: unknown): T | undefined => values.find((x) => x === v);
  return {
    default: def,
    ...(env === undefined ? {} : { env }),
    expected: `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`,
    fromToml: pick,
    fromEnv: pick,
  };
}

function text(def: string, expected: string, env?: string): Key<string> {
  const ok = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  return {
    default: def,
    ...(env === undefined ? {} : { env }),
    expected,
    fromToml: ok,
    fromEnv: ok,
  };
}

/** A positive Go duration (`90s`, `2m`), as Kata's timeouts are written; the value in ms. */
function duration(defMs: number, env?: string): Key<number> {
  const ok = (v: unknown): number | undefined => {
    const ms = typeof v === 'string' ? goDurationMs(v) : undefined;
    return ms !== undefined && ms > 0 ? ms : undefined;
  };
  return {
    default: defMs,
    ...(env === undefined ? {} : { env }),
    expected: 'a positive duration such as "90s" or "2m"',
    fromToml: ok,
    fromEnv: ok,
  };
}

/** A path; absolute, since the processes that read it run from any directory. */
function path(def: string, env?: string): Key<string> {
  const ok = (v: unknown): string | undefined =>
    typeof v === 'string' && (v === '' || v.startsWith('/')) ? v : undefined;
  return {
    default: def,
    ...(env === undefined ? {} : { env }),
    expected: 'an absolute path (a string starting with /), or "" for the default',
    fromToml: ok,
    fromEnv: ok,
  };
}

/**
 * The file's layout. A key's default here is the one place kapsel's default
 * for it is decided, except where it points to the module that owns it.
 */
export const SCHEMA = {
  hypervisor: {
    /** Kata: machine_type. vm/config.ts Machine. */
    machine_type: oneOf(['q35', 'microvm'], DEFAULT_MACHINE, 'KAPSEL_MACHINE'),
    /** No Kata key (Kata always uses KVM): auto probes KVM (vm/kvm.ts). */
    accel: oneOf(['auto', 'kvm', 'tcg'], 'auto', 'KAPSEL_ACCEL'),
    /** Kata: kernel. "" is rootfs/build.sh's kernel (build/guest/vmlinux, else vmlinuz). */
    kernel: path('', 'KAPSEL_KERNEL'),
    /** Kata: image vs initrd. How the guest's files reach it (guest-image.ts). */
    guest_image: oneOf(['pmem', 'initrd'], 'pmem', 'KAPSEL_GUEST_IMAGE'),
    /** Kata: initrd. The whole-guest initrd of the initrd mode; "" is build/guest/initrd.img. */
    initrd: path('', 'KAPSEL_INITRD'),
    /**
     * Kata: kernel_params. More guest kernel parameters, space-separated:
     * the init's options for debugging a guest (docs/light-sandboxes.md).
     */
    kernel_params: text(
      '',
      'a string of space-separated kernel parameters',
      'KAPSEL_KERNEL_PARAMS',
    ),
    /** Kata: default_memory, MiB. Guest RAM before any container limit (sizing.ts). */
    default_memory: int(
      DEFAULT_SIZING.baseMemoryMiB,
      1,
      'a positive integer of MiB',
      'KAPSEL_VM_BASE_MEMORY_MIB',
    ),
    /** Kata: default_vcpus. vCPUs before any container quota. */
    default_vcpus: int(DEFAULT_SIZING.baseCpus, 1, 'a positive integer', 'KAPSEL_VM_BASE_CPUS'),
    /** Kata: default_maxvcpus; 0 is the host's CPUs, as in Kata. */
    default_maxvcpus: int(0, 0, 'an integer, 0 for the host CPUs', 'KAPSEL_VM_MAX_CPUS'),
    /**
     * Kata: shared_fs. How the containers' files reach the guest: virtiofsd,
     * or QEMU's own 9p server, whose template clones share the template's
     * RAM copy-on-write (vm/config.ts SharedFs).
     */
    shared_fs: oneOf(['virtio-fs', 'virtio-9p'], DEFAULT_SHARED_FS, 'KAPSEL_SHARED_FS'),
    /** No Kata key: QEMU's `-accel tcg,tb-size=` in MiB; ignored under KVM. */
    tcg_tb_mib: int(TCG_TB_MIB, 1, 'a positive integer of MiB', 'KAPSEL_TCG_TB_MIB'),
  },
  factory: {
    /** Kata: enable_template. Start sandboxes from a saved VM (template/). */
    enable_template: bool(DEFAULT_TEMPLATE_ENABLED, 'KAPSEL_TEMPLATE'),
    /** Kata: template_path. Where templates are kept. */
    template_path: path(DEFAULT_TEMPLATE_DIR, 'KAPSEL_TEMPLATE_DIR'),
  },
  runtime: {
    /** Kata: enable_debug. As `--debug` on every kapsel command. */
    enable_debug: bool(false),
    /** No Kata key: the containerd shim v2's own log; "" is kapsel-shim.log in the bundle. */
    shim_log: path('', 'KAPSEL_SHIM_LOG'),
    /**
     * Kata: dial_timeout (of its agent). How long a start waits for a
     * sandbox or a shim to become ready (sys/ready-deadline.ts), in ms.
     */
    ready_timeout: duration(DEFAULT_READY_TIMEOUT_MS, 'KAPSEL_READY_TIMEOUT'),
  },
} as const;

type Schema = typeof SCHEMA;
type ValueOf<K> = K extends Key<infer T> ? T : never;

/** The effective settings: every key of SCHEMA with its value. */
export type Settings = {
  readonly [S in keyof Schema]: { readonly [K in keyof Schema[S]]: ValueOf<Schema[S][K]> };
};

export type HypervisorSettings = Settings['hypervisor'];
export type FactorySettings = Settings['factory'];
export type RuntimeSettings = Settings['runtime'];

/** Where a key's value came from: `section.key` -> source. */
export type Source = 'default' | 'file' | 'env';
