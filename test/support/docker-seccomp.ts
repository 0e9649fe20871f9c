// A seccomp profile shaped like the one Docker sends by default (moby's
// profiles/seccomp: default action ERRNO(EPERM), x86 arches, one big ALLOW
// list that names calls of other architectures too, personality and clone
// allowed only with certain arguments, clone3 answering ENOSYS), built
// from this machine's syscall table so the test needs no copy of Docker's.
import { existsSync, readFileSync } from 'node:fs';
import type { Seccomp } from '../../oci/spec.js';

const UNISTD = '/usr/include/x86_64-linux-gnu/asm/unistd_64.h';

/** What Docker's profile leaves out for an unprivileged container. */
const DENIED = new Set([
  'mount',
  'umount2',
  'reboot',
  'swapon',
  'swapoff',
  'pivot_root',
  'init_module',
  'finit_module',
  'delete_module',
  'kexec_load',
  'kexec_file_load',
  'bpf',
  'ptrace',
  'unshare',
  'setns',
  'clone',
  'clone3',
  'personality',
  'open_by_handle_at',
  'name_to_handle_at',
]);

/** Calls Docker lists that x86_64 does not have (libseccomp knows them for arm, s390). */
const OTHER_ARCH_CALLS = [
  'arm_fadvise64_64',
  'arm_sync_file_range',
  's390_pci_mmio_read',
  'breakpoint',
];

export function dockerLikeProfileMissing(): string | undefined {
  return existsSync(UNISTD) ? undefined : `${UNISTD} missing (apt-get install linux-libc-dev)`;
}

export function dockerLikeProfile(): Seccomp {
  const names = [...readFileSync(UNISTD, 'utf8').matchAll(/^#define __NR_(\w+)\s+\d+/gm)]
    .map((m) => m[1] ?? '')
    .filter((n) => n !== '' && !DENIED.has(n));
  const CLONE_NEW_MASK = 0x7e020000; // every CLONE_NEW* flag, as moby masks them
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: 1,
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
    syscalls: [
      { names: [...names, ...OTHER_ARCH_CALLS], action: 'SCMP_ACT_ALLOW' },
      ...[0x0, 0x8, 0x20000, 0x20008, 0xffffffff].map((value) => ({
        names: ['personality'],
        action: 'SCMP_ACT_ALLOW',
        args: [{ index: 0, value, op: 'SCMP_CMP_EQ' }],
      })),
      {
        names: ['clone'],
        action: 'SCMP_ACT_ALLOW',
        args: [{ index: 0, value: CLONE_NEW_MASK, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
      },
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 },
    ],
  };
}
