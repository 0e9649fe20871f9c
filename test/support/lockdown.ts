// Specs exercising the lock-down fields, shared by the host and VM tests.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Spec } from '../../oci/spec.js';
import { testSpec } from './spec.js';

/** What the checker prints for the lock-down spec (parsed by the tests). */
export const lockdownScript = [
  'checker id',
  'checker umask',
  'checker caps',
  'checker status NoNewPrivs Seccomp',
  'checker rlimits',
  'checker oom',
  'checker access /rw-dir /open-dir',
  'echo masked-file-content=$(cat /secret-file)',
  'echo masked-dir-listing=$(ls /secret-dir)',
  'checker sysctl kernel.shmmax',
  'checker sysctl net.ipv4.ip_forward',
  'checker stat /dev/mydev /dev/null /dev/ptmx',
  'checker mkdir /tmp/x',
  'checker mounts',
].join('; ');

/** Adds the files the lock-down spec masks and protects to a rootfs. */
export function prepareLockdownRootfs(rootfs: string): void {
  writeFileSync(join(rootfs, 'secret-file'), 'secret\n');
  mkdirSync(join(rootfs, 'secret-dir'), { recursive: true });
  writeFileSync(join(rootfs, 'secret-dir/inside'), 'x\n');
  for (const d of ['rw-dir', 'open-dir']) {
    mkdirSync(join(rootfs, d), { recursive: true });
    chmodSync(join(rootfs, d), 0o777);
  }
  chmodSync(join(rootfs, 'tmp'), 0o1777);
}

export function lockdownSpec(rootfs: string, script = lockdownScript): Spec {
  prepareLockdownRootfs(rootfs);
  const spec = testSpec(rootfs, ['sh', '-c', script], 'locked');
  spec.process = {
    ...spec.process,
    args: ['sh', '-c', script],
    cwd: '/',
    user: { uid: 1000, gid: 1000, additionalGids: [10, 20], umask: 0o027 },
    capabilities: {
      bounding: ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_SETUID'],
      effective: ['CAP_KILL'],
      permitted: ['CAP_KILL', 'CAP_NET_BIND_SERVICE'],
      inheritable: ['CAP_NET_BIND_SERVICE'],
      ambient: ['CAP_NET_BIND_SERVICE'],
    },
    noNewPrivileges: true,
    rlimits: [
      { type: 'RLIMIT_NOFILE', soft: 321, hard: 654 },
      { type: 'RLIMIT_CORE', soft: 0, hard: 2 ** 64 - 1 },
    ],
    oomScoreAdj: 123,
  };
  spec.linux = {
    namespaces: [
      { type: 'pid' },
      { type: 'ipc' },
      { type: 'uts' },
      { type: 'mount' },
      { type: 'network' },
    ],
    rootfsPropagation: 'rprivate',
    maskedPaths: ['/proc/kcore', '/secret-file', '/secret-dir', '/does-not-exist'],
    readonlyPaths: ['/proc/sys', '/rw-dir'],
    sysctl: { 'kernel.shmmax': '12345678', 'net.ipv4.ip_forward': '1' },
    devices: [
      { type: 'c', path: '/dev/mydev', major: 1, minor: 3, fileMode: 0o640, uid: 1000, gid: 20 },
    ],
    seccomp: {
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
      syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 95 }],
    },
  };
  return spec;
}

export function usernsSpec(rootfs: string, script: string): Spec {
  const spec = testSpec(rootfs, ['sh', '-c', script], 'userns');
  spec.linux = {
    namespaces: [
      { type: 'user' },
      { type: 'pid' },
      { type: 'ipc' },
      { type: 'uts' },
      { type: 'mount' },
      { type: 'network' },
    ],
    uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
    gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
  };
  return spec;
}
