// OCI spec to spawn request: the lock-down fields, in the numbers the native
// helper takes, and the refusals that name the field.
import { describe, expect, it } from 'vitest';
import type { Spec } from '../../oci/spec.js';
import { AgentError } from '../../agent/src/errors.js';
import { encodeSpawnRequest, Tag } from '../../agent/src/native/protocol.js';
import { toSpawnRequest } from '../../agent/src/spec/translate.js';

function spec(edit: (s: Spec) => void = () => undefined): Spec {
  const s: Spec = {
    ociVersion: '1.2.0',
    process: { user: { uid: 0, gid: 0 }, args: ['true'], cwd: '/' },
    root: { path: '/rootfs' },
    linux: {
      namespaces: [{ type: 'mount' }, { type: 'pid' }, { type: 'network' }, { type: 'ipc' }],
    },
  };
  edit(s);
  return s;
}

function refusal(s: Spec): string {
  try {
    toSpawnRequest(s);
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).kind).toBe('invalid-argument');
    return (err as Error).message;
  }
  throw new Error('not refused');
}

describe('lock-down fields become native numbers', () => {
  it('turns capability names into bit masks per set', () => {
    const { request } = toSpawnRequest(
      spec((s) => {
        if (s.process) {
          s.process.capabilities = {
            bounding: ['CAP_CHOWN', 'CAP_SYS_ADMIN'],
            effective: ['cap_kill'],
            ambient: [],
          };
        }
      }),
    );
    expect(request.capabilities).toEqual({
      bounding: (1n << 0n) | (1n << 21n),
      effective: 1n << 5n,
      permitted: 0n,
      inheritable: 0n,
      ambient: 0n,
    });
  });

  it('leaves capabilities alone when the spec has none (runc)', () => {
    expect(toSpawnRequest(spec()).request.capabilities).toBeUndefined();
  });

  it('maps rlimits to resource numbers and clamps 2^64-1 to RLIM_INFINITY', () => {
    const { request } = toSpawnRequest(
      spec((s) => {
        if (s.process) {
          s.process.rlimits = [
            { type: 'RLIMIT_NOFILE', soft: 1024, hard: 4096 },
            { type: 'RLIMIT_CORE', soft: 0, hard: 2 ** 64 - 1 },
          ];
        }
      }),
    );
    expect(request.rlimits).toEqual([
      { resource: 7, soft: 1024n, hard: 4096n },
      { resource: 4, soft: 0n, hard: 0xffffffffffffffffn },
    ]);
  });

  it('translates the seccomp profile to libseccomp actions, operators and arches', () => {
    const { request } = toSpawnRequest(
      spec((s) => {
        s.linux = {
          ...s.linux,
          seccomp: {
            defaultAction: 'SCMP_ACT_ERRNO',
            defaultErrnoRet: 1,
            architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X32'],
            flags: ['SECCOMP_FILTER_FLAG_LOG'],
            syscalls: [
              { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW' },
              {
                names: ['personality'],
                action: 'SCMP_ACT_ALLOW',
                args: [{ index: 0, value: 0xffffffff, op: 'SCMP_CMP_EQ' }],
              },
              { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 },
            ],
          },
        };
      }),
    );
    expect(request.seccomp).toEqual({
      defaultAction: 0x00050001,
      flags: 2,
      architectures: ['x86_64', 'x32'],
      rules: [
        { name: 'read', action: 0x7fff0000, args: [] },
        { name: 'write', action: 0x7fff0000, args: [] },
        {
          name: 'personality',
          action: 0x7fff0000,
          args: [{ index: 0, op: 4, value: 0xffffffffn, valueTwo: 0n }],
        },
        { name: 'clone3', action: 0x00050026, args: [] },
      ],
    });
  });

  it('makes devices, sysctls, paths, propagation and the terminal', () => {
    const { request } = toSpawnRequest(
      spec((s) => {
        s.linux = {
          ...s.linux,
          devices: [{ type: 'b', path: '/dev/sda', major: 8, minor: 0, fileMode: 0o600 }],
          sysctl: { 'net.ipv4.ip_forward': '1', 'kernel.shmmax': '100' },
          maskedPaths: ['/proc/kcore'],
          readonlyPaths: ['/proc/sys'],
          rootfsPropagation: 'rshared',
        };
        if (s.process) {
          s.process.terminal = true;
          s.process.consoleSize = { height: 24, width: 80 };
          s.process.oomScoreAdj = -500;
          s.process.noNewPrivileges = true;
        }
      }),
    );
    expect(request.devices).toEqual([
      { path: '/dev/sda', mode: 0o060600, major: 8, minor: 0, uid: 0, gid: 0 },
    ]);
    expect(request.sysctl).toEqual([
      { key: 'net/ipv4/ip_forward', value: '1' },
      { key: 'kernel/shmmax', value: '100' },
    ]);
    expect(request.maskedPaths).toEqual(['/proc/kcore']);
    expect(request.readonlyPaths).toEqual(['/proc/sys']);
    expect(request.rootPropagation).toBe(0x100000 | 0x4000); // MS_SHARED | MS_REC
    expect(request.terminal).toEqual({ rows: 24, cols: 80 });
    expect(request.oomScoreAdj).toBe(-500);
    expect(request.noNewPrivileges).toBe(true);
  });

  it('writes the id maps of a user namespace', () => {
    const { request } = toSpawnRequest(
      spec((s) => {
        s.linux = {
          namespaces: [{ type: 'user' }, { type: 'mount' }],
          uidMappings: [
            { containerID: 0, hostID: 1000, size: 1 },
            { containerID: 1, hostID: 100000, size: 65535 },
          ],
          gidMappings: [{ containerID: 0, hostID: 1000, size: 1 }],
        };
      }),
    );
    expect(request.namespaces).toEqual(['user', 'mount']);
    expect(request.uidMap).toBe('0 1000 1\n1 100000 65535\n');
    expect(request.gidMap).toBe('0 1000 1\n');
  });

  it('encodes the lock-down fields for kapsel_spawn', () => {
    const { request } = toSpawnRequest(
      spec((s) => {
        if (s.process) {
          s.process.capabilities = { bounding: ['CAP_CHECKPOINT_RESTORE'] };
          s.process.oomScoreAdj = -1;
        }
      }),
    );
    const buf = encodeSpawnRequest(request);
    const tags: number[] = [];
    let caps: Buffer | undefined;
    let oom: Buffer | undefined;
    for (let off = 4; off < buf.length;) {
      const tag = buf.readUInt32LE(off);
      const len = buf.readUInt32LE(off + 4);
      if (tag === Tag.caps) caps = buf.subarray(off + 8, off + 8 + len);
      if (tag === Tag.oomScoreAdj) oom = buf.subarray(off + 8, off + 8 + len);
      tags.push(tag);
      off += 8 + len;
    }
    // Bounding is the first (lo, hi) pair: bit 40 is bit 8 of the high word.
    expect(caps?.length).toBe(40);
    expect(caps?.readUInt32LE(0)).toBe(0);
    expect(caps?.readUInt32LE(4)).toBe(1 << 8);
    expect(oom?.readInt32LE(0)).toBe(-1);
  });
});

describe('refusals name the field', () => {
  it.each<[string, (s: Spec) => void, string]>([
    [
      'hostname without a uts namespace',
      (s) => {
        s.hostname = 'h';
      },
      'hostname: needs a uts namespace',
    ],
    [
      'unknown namespace',
      (s) => {
        s.linux = { namespaces: [{ type: 'mount' }, { type: 'nope' as 'pid' }] };
      },
      'linux.namespaces[1].type',
    ],
    [
      'time namespace',
      (s) => {
        s.linux = { namespaces: [{ type: 'mount' }, { type: 'time' }] };
      },
      'linux.namespaces[1].type: time',
    ],
    [
      'no mount namespace',
      (s) => {
        s.linux = { namespaces: [{ type: 'pid' }] };
      },
      'linux.namespaces',
    ],
    [
      'user namespace without maps',
      (s) => {
        s.linux = { namespaces: [{ type: 'user' }, { type: 'mount' }] };
      },
      'linux.uidMappings',
    ],
    [
      'misspelt capability',
      (s) => {
        if (s.process) s.process.capabilities = { ambient: ['CAP_NET_RAWW'] };
      },
      'process.capabilities.ambient[0]',
    ],
    [
      'unknown rlimit',
      (s) => {
        if (s.process) s.process.rlimits = [{ type: 'RLIMIT_FOO', soft: 1, hard: 1 }];
      },
      'process.rlimits[0].type',
    ],
    [
      'soft above hard',
      (s) => {
        if (s.process) s.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 2, hard: 1 }];
      },
      'process.rlimits[0]: soft limit',
    ],
    [
      'uid out of range',
      (s) => {
        if (s.process) s.process.user = { uid: -1, gid: 0 };
      },
      'process.user.uid',
    ],
    [
      'gid out of range',
      (s) => {
        if (s.process) s.process.user = { uid: 0, gid: 2 ** 32 };
      },
      'process.user.gid',
    ],
    [
      'oomScoreAdj out of range',
      (s) => {
        if (s.process) s.process.oomScoreAdj = 1001;
      },
      'process.oomScoreAdj',
    ],
    [
      'seccomp action',
      (s) => {
        s.linux = { ...s.linux, seccomp: { defaultAction: 'SCMP_ACT_NOPE' } };
      },
      'linux.seccomp.defaultAction',
    ],
    [
      'seccomp arch',
      (s) => {
        s.linux = {
          ...s.linux,
          seccomp: { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_Z80'] },
        };
      },
      'linux.seccomp.architectures[0]',
    ],
    [
      'seccomp operator',
      (s) => {
        s.linux = {
          ...s.linux,
          seccomp: {
            defaultAction: 'SCMP_ACT_ALLOW',
            syscalls: [
              {
                names: ['read'],
                action: 'SCMP_ACT_ERRNO',
                args: [{ index: 0, value: 1, op: 'SCMP_CMP_ABOUT' }],
              },
            ],
          },
        };
      },
      'linux.seccomp.syscalls[0].args[0].op',
    ],
    [
      'seccomp notify',
      (s) => {
        s.linux = {
          ...s.linux,
          seccomp: { defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '/run/x' },
        };
      },
      'linux.seccomp.listenerPath',
    ],
    [
      'sysctl of the whole kernel',
      (s) => {
        s.linux = { ...s.linux, sysctl: { 'kernel.panic': '1' } };
      },
      'linux.sysctl["kernel.panic"]',
    ],
    [
      'net sysctl without a network namespace',
      (s) => {
        s.linux = { namespaces: [{ type: 'mount' }], sysctl: { 'net.ipv4.ip_forward': '1' } };
      },
      'needs a network namespace',
    ],
    [
      'device without numbers',
      (s) => {
        s.linux = { ...s.linux, devices: [{ type: 'c', path: '/dev/x' }] };
      },
      'linux.devices[0].major',
    ],
    [
      'relative masked path',
      (s) => {
        s.linux = { ...s.linux, maskedPaths: ['proc/kcore'] };
      },
      'linux.maskedPaths[0]',
    ],
    [
      'unknown propagation',
      (s) => {
        s.linux = { ...s.linux, rootfsPropagation: 'sideways' };
      },
      'linux.rootfsPropagation',
    ],
    [
      'console size',
      (s) => {
        if (s.process) {
          s.process.terminal = true;
          s.process.consoleSize = { height: 70000, width: 1 };
        }
      },
      'process.consoleSize',
    ],
  ])('%s', (_name, edit, field) => {
    expect(refusal(spec(edit))).toContain(field);
  });
});
