// The one validator of OCI documents (oci/validate): shapes refused naming
// the field, zero meaning unset as in runc, the cgroup v1-only rule table;
// and the runtime's runc-compatible parsing of signals and rlimits.
/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-explicit-any --
   the edits build deliberately ill-typed specs, which is what is tested */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  SpecError,
  V1_ONLY_RULES,
  validateProcess,
  validateResources,
  validateSpec,
  type Ignored,
} from '../../oci/validate/index.js';
import { defaultSpec } from '../../runtime/src/commands/spec.js';
import { callerRlimits, withDefaultRlimits } from '../../runtime/src/sys/rlimits.js';
import { signalNumber } from '../../runtime/src/sys/signals.js';

function base(): Record<string, unknown> {
  return JSON.parse(JSON.stringify(defaultSpec())) as Record<string, unknown>;
}

function refusal(check: () => unknown): SpecError {
  try {
    check();
  } catch (err) {
    expect(err).toBeInstanceOf(SpecError);
    return err as SpecError;
  }
  throw new Error('not refused');
}

type Edit = (s: any) => void;

describe('validateSpec', () => {
  it("accepts kapsel's and runc's default specs", () => {
    expect(() => validateSpec(defaultSpec())).not.toThrow();
    expect(() => validateSpec(JSON.stringify(defaultSpec()))).not.toThrow();
  });

  it.skipIf(!existsSync('/usr/sbin/runc'))('accepts what `runc spec` writes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kapsel-runc-spec-'));
    try {
      execFileSync('/usr/sbin/runc', ['spec'], { cwd: dir });
      expect(() => validateSpec(readFileSync(join(dir, 'config.json'), 'utf8'))).not.toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const shapes: [string, Edit, string, string][] = [
    ['mounts: [null]', (s) => (s.mounts = [null]), 'mounts[0]', 'must be an object, got null'],
    [
      'mount options a string',
      (s) => (s.mounts[1].options = 'nosuid'),
      'mounts[1].options',
      'must be a list, got a string',
    ],
    [
      'namespaces not a list',
      (s) => (s.linux.namespaces = { type: 'pid' }),
      'linux.namespaces',
      'must be a list, got an object',
    ],
    [
      'args a string',
      (s) => (s.process.args = 'sh'),
      'process.args',
      'must be a non-empty list of strings',
    ],
    [
      'a capability set a string',
      (s) => (s.process.capabilities.bounding = 'CAP_KILL'),
      'process.capabilities.bounding',
      'must be a list, got a string',
    ],
    [
      'an unknown capability',
      (s) => s.process.capabilities.effective.push('CAP_NOPE'),
      'process.capabilities.effective[3]',
      'unknown capability "CAP_NOPE"',
    ],
    [
      'uid a string',
      (s) => (s.process.user.uid = '0'),
      'process.user.uid',
      'must be an integer in 0..4294967294, got "0"',
    ],
    [
      'an unknown rlimit',
      (s) => (s.process.rlimits = [{ type: 'RLIMIT_FOO', soft: 1, hard: 1 }]),
      'process.rlimits[0].type',
      'unknown rlimit "RLIMIT_FOO"',
    ],
    ['root missing', (s) => delete s.root, 'root', 'missing'],
    ['root a string', (s) => (s.root = 'rootfs'), 'root', 'must be an object, got a string'],
    [
      'env not strings',
      (s) => (s.process.env = [1]),
      'process.env[0]',
      'must be a string, got a number',
    ],
    [
      'a relative hook path',
      (s) => (s.hooks = { prestart: [{ path: 'hook' }] }),
      'hooks.prestart[0].path',
      'must be an absolute path, got "hook"',
    ],
    [
      'a sysctl outside the namespaces',
      (s) => (s.linux.sysctl = { 'kernel.panic': '1' }),
      'linux.sysctl["kernel.panic"]',
      'not in a namespace the container has of its own',
    ],
    [
      'a hostname without uts',
      (s) => (s.linux.namespaces = [{ type: 'mount' }]),
      'hostname',
      'needs a uts namespace in linux.namespaces',
    ],
    [
      'memory a string',
      (s) => (s.linux.resources = { memory: '64m' }),
      'linux.resources.memory',
      'must be an object, got a string',
    ],
    [
      'seccomp syscalls names a string',
      (s) =>
        (s.linux.seccomp = {
          defaultAction: 'SCMP_ACT_ALLOW',
          syscalls: [{ names: 'read', action: 'SCMP_ACT_ERRNO' }],
        }),
      'linux.seccomp.syscalls[0].names',
      'must be a list, got a string',
    ],
  ];
  it.each(shapes)('refuses %s naming the field', (_name, edit, field, reason) => {
    const s = base();
    edit(s);
    const err = refusal(() => validateSpec(s));
    expect(err.field).toBe(field);
    expect(err.message).toBe(`${field}: ${reason}`);
  });

  it('refuses text that is not a JSON object', () => {
    expect(refusal(() => validateSpec('[1]')).message).toBe(
      'config: must be an object, got a list',
    );
    expect(refusal(() => validateSpec('{')).field).toBe('config');
  });

  it("validates an exec's process.json alone", () => {
    expect(
      refusal(() => validateProcess({ args: ['sh'], cwd: 'tmp', user: { uid: 0, gid: 0 } }))
        .message,
    ).toBe('process.cwd: must be an absolute path, got "tmp"');
    expect(refusal(() => validateProcess(null)).message).toBe('process: missing');
  });
});

describe('linux.resources: zero and empty are unset, as runc treats them', () => {
  it('takes what `docker update --memory 80m --memory-swap 80m` sends', () => {
    const mib80 = 80 * 1024 * 1024;
    // Docker and containerd send the whole struct, unset fields as zero.
    const sent = {
      memory: { limit: mib80, reservation: 0, swap: mib80, kernel: 0, kernelTCP: 0 },
      cpu: {
        shares: 0,
        quota: 0,
        period: 0,
        realtimeRuntime: 0,
        realtimePeriod: 0,
        cpus: '',
        mems: '',
      },
      blockIO: { weight: 0 },
      pids: { limit: 0 },
    };
    const ignored: Ignored[] = [];
    expect(validateResources(sent, { ignore: (i) => ignored.push(i) })).toEqual({
      memory: { limit: mib80, swap: mib80 },
    });
    expect(ignored).toEqual([]);
  });

  it('takes what `docker update --restart always` sends: nothing to change', () => {
    const sent = {
      memory: { limit: 0, reservation: 0, swap: 0, kernel: 0, kernelTCP: 0 },
      cpu: {
        shares: 0,
        quota: 0,
        period: 0,
        realtimeRuntime: 0,
        realtimePeriod: 0,
        cpus: '',
        mems: '',
      },
      blockIO: { weight: 0, weightDevice: null, throttleReadBpsDevice: null },
      pids: { limit: 0 },
      devices: null,
      hugepageLimits: null,
    };
    expect(validateResources(sent)).toEqual({});
  });

  it('keeps -1 (unlimited) and refuses what runc refuses', () => {
    expect(validateResources({ memory: { limit: -1 }, pids: { limit: -1 } })).toEqual({
      memory: { limit: -1 },
      pids: { limit: -1 },
    });
    expect(refusal(() => validateResources({ cpu: { period: 10 } })).field).toBe(
      'linux.resources.cpu.period',
    );
    expect(refusal(() => validateResources({ memory: { limit: 100, swap: 50 } })).field).toBe(
      'linux.resources.memory.swap',
    );
  });
});

describe('cgroup v1-only fields: one rule for all, ignored with a warning as runc does on v2', () => {
  const set: Record<string, unknown> = {
    'memory.kernel': 1 << 26,
    'memory.kernelTCP': 1 << 20,
    'memory.swappiness': 10,
    'memory.disableOOMKiller': true,
    'memory.useHierarchy': false,
    'cpu.realtimeRuntime': 1000,
    'cpu.realtimePeriod': 100000,
    'blockIO.leafWeight': 100,
    'blockIO.weightDevice[].leafWeight': 100,
    'network.classID': 7,
    'network.priorities': [{ name: 'eth0', priority: 1 }],
  };
  it.each(V1_ONLY_RULES.map((r) => [r.path, r.why]))('%s is dropped and reported', (path) => {
    const [group = '', key = ''] = path.split('.');
    const value = set[path];
    const resources =
      path === 'blockIO.weightDevice[].leafWeight'
        ? { blockIO: { weightDevice: [{ major: 8, minor: 0, weight: 100, leafWeight: value }] } }
        : { [group]: { [key]: value } };
    const ignored: Ignored[] = [];
    const out = validateResources(resources, { ignore: (i) => ignored.push(i) });
    expect(ignored).toHaveLength(1);
    expect(ignored[0]?.field).toBe(
      path === 'blockIO.weightDevice[].leafWeight'
        ? 'linux.resources.blockIO.weightDevice[0].leafWeight'
        : `linux.resources.${path}`,
    );
    expect(JSON.stringify(out)).not.toContain(key === 'weightDevice[]' ? 'leafWeight' : key);
    // Zero or false asks for nothing: no warning.
    const quiet: Ignored[] = [];
    const zero =
      typeof value === 'boolean'
        ? path !== 'memory.useHierarchy' && false
        : Array.isArray(value)
          ? []
          : 0;
    if (path !== 'memory.swappiness' && path !== 'memory.useHierarchy') {
      validateResources(
        path === 'blockIO.weightDevice[].leafWeight'
          ? { blockIO: { weightDevice: [{ major: 8, minor: 0, leafWeight: zero }] } }
          : { [group]: { [key]: zero } },
        { ignore: (i) => quiet.push(i) },
      );
      expect(quiet).toEqual([]);
    }
  });
});

describe('signals as runc kill parses them', () => {
  it.each([
    ['0', 0],
    ['9', 9],
    ['KILL', 9],
    ['kill', 9],
    ['SIGTERM', 15],
    ['sigusr1', 10],
    ['WINCH', 28],
    ['34', 34],
    ['64', 64],
  ])('%s is %i', (s, n) => {
    expect(signalNumber(s)).toBe(n);
  });
  it.each(['NOSUCH', 'SIGIOT', 'RTMIN', '65', '-1'])('%s is refused', (s) => {
    expect(() => signalNumber(s)).toThrow(/signal/);
  });
  it('words an unknown name as runc does', () => {
    expect(() => signalNumber('NOSUCH')).toThrow('unknown signal "NOSUCH"');
  });
});

describe("the caller's rlimits", () => {
  it('reads /proc/self/limits and fills what the spec leaves out', async () => {
    const caller = await callerRlimits();
    expect(caller.map((r) => r.type)).toHaveLength(16);
    const nofile = caller.find((r) => r.type === 'RLIMIT_NOFILE');
    const limits = readFileSync('/proc/self/limits', 'utf8');
    expect(limits).toMatch(new RegExp(`Max open files\\s+${nofile?.soft}\\s+${nofile?.hard}`));
    const merged = withDefaultRlimits([{ type: 'RLIMIT_NOFILE', soft: 10, hard: 20 }], caller);
    expect(merged.filter((r) => r.type === 'RLIMIT_NOFILE')).toEqual([
      { type: 'RLIMIT_NOFILE', soft: 10, hard: 20 },
    ]);
    expect(merged).toHaveLength(16);
    expect(() =>
      validateSpec({ ...base(), process: { ...(base()['process'] as object), rlimits: merged } }),
    ).not.toThrow();
  });
});
