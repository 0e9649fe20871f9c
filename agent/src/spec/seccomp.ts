// linux.seccomp: the OCI profile in libseccomp's numbering. Syscall names
// are checked by libseccomp itself when libkapsel compiles the filter at
// create (native/lib/seccomp.c); everything else is checked here.
import type { Seccomp, SeccompArg } from '../../../oci/spec.js';
import { invalidArgument } from '../errors.js';
import type { SeccompProgram, SeccompRule } from '../native/types.js';

const EPERM = 1;

/** seccomp.h SCMP_ACT_*: a function of the errno where the action takes one. */
const ACTIONS: Readonly<Record<string, (ret: number) => number>> = {
  SCMP_ACT_KILL: () => 0x00000000,
  SCMP_ACT_KILL_THREAD: () => 0x00000000,
  SCMP_ACT_KILL_PROCESS: () => 0x80000000,
  SCMP_ACT_TRAP: () => 0x00030000,
  SCMP_ACT_ERRNO: (ret) => (0x00050000 | (ret & 0xffff)) >>> 0,
  SCMP_ACT_TRACE: (ret) => (0x7ff00000 | (ret & 0xffff)) >>> 0,
  SCMP_ACT_LOG: () => 0x7ffc0000,
  SCMP_ACT_ALLOW: () => 0x7fff0000,
};

const OPS: Readonly<Record<string, number>> = {
  SCMP_CMP_NE: 1,
  SCMP_CMP_LT: 2,
  SCMP_CMP_LE: 3,
  SCMP_CMP_EQ: 4,
  SCMP_CMP_GE: 5,
  SCMP_CMP_GT: 6,
  SCMP_CMP_MASKED_EQ: 7,
};

/** linux/seccomp.h SECCOMP_FILTER_FLAG_*; NEW_LISTENER needs listenerPath, not served. */
const FLAGS: Readonly<Record<string, number>> = {
  SECCOMP_FILTER_FLAG_TSYNC: 1,
  SECCOMP_FILTER_FLAG_LOG: 2,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
  SECCOMP_FILTER_FLAG_TSYNC_ESRCH: 16,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: 32,
};

const ARCHES = new Set([
  'x86',
  'x86_64',
  'x32',
  'arm',
  'aarch64',
  'mips',
  'mips64',
  'mips64n32',
  'mipsel',
  'mipsel64',
  'mipsel64n32',
  'ppc',
  'ppc64',
  'ppc64le',
  's390',
  's390x',
  'parisc',
  'parisc64',
  'riscv64',
]);

function action(name: unknown, ret: unknown, fallbackRet: number, field: string): number {
  const f = typeof name === 'string' && Object.hasOwn(ACTIONS, name) ? ACTIONS[name] : undefined;
  if (f === undefined) {
    throw invalidArgument(`${field}: unknown or unsupported action ${JSON.stringify(name)}`);
  }
  if (ret !== undefined && (typeof ret !== 'number' || !Number.isInteger(ret) || ret < 0)) {
    throw invalidArgument(`${field}: errnoRet must be a non-negative integer`);
  }
  return f(typeof ret === 'number' ? ret : fallbackRet);
}

function u64(v: unknown, field: string): bigint {
  if (v === undefined) return 0n;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    throw invalidArgument(`${field}: must be a non-negative integer`);
  }
  return BigInt(v);
}

function arg(a: SeccompArg, field: string): SeccompRule['args'][number] {
  if (!Number.isInteger(a.index) || a.index < 0 || a.index > 5) {
    throw invalidArgument(`${field}.index: must be 0..5`);
  }
  const op = Object.hasOwn(OPS, a.op) ? OPS[a.op] : undefined;
  if (op === undefined)
    throw invalidArgument(`${field}.op: unknown operator ${JSON.stringify(a.op)}`);
  return {
    index: a.index,
    op,
    value: u64(a.value, `${field}.value`),
    valueTwo: u64(a.valueTwo, `${field}.valueTwo`),
  };
}

export function toSeccompProgram(sc: Seccomp, field = 'linux.seccomp'): SeccompProgram {
  const defaultRet = sc.defaultErrnoRet ?? EPERM;
  const defaultAction = action(
    sc.defaultAction,
    sc.defaultErrnoRet,
    EPERM,
    `${field}.defaultAction`,
  );
  if (sc.listenerPath !== undefined && sc.listenerPath !== '') {
    throw invalidArgument(`${field}.listenerPath: seccomp notify is not supported`);
  }
  const architectures = (sc.architectures ?? []).map((a, i) => {
    const raw: unknown = a;
    const name = (typeof raw === 'string' ? raw : '').replace(/^SCMP_ARCH_/, '').toLowerCase();
    if (!ARCHES.has(name)) {
      throw invalidArgument(
        `${field}.architectures[${i}]: unknown architecture ${JSON.stringify(a)}`,
      );
    }
    return name;
  });
  let flags = 0;
  (sc.flags ?? []).forEach((f, i) => {
    const bit = Object.hasOwn(FLAGS, f) ? FLAGS[f] : undefined;
    if (bit === undefined)
      throw invalidArgument(`${field}.flags[${i}]: unsupported flag ${JSON.stringify(f)}`);
    flags |= bit;
  });
  const rules: SeccompRule[] = [];
  (sc.syscalls ?? []).forEach((s, i) => {
    const f = `${field}.syscalls[${i}]`;
    const act = action(s.action, s.errnoRet, defaultRet, `${f}.action`);
    const args = (s.args ?? []).map((a, j) => arg(a, `${f}.args[${j}]`));
    if (!Array.isArray(s.names) || s.names.length === 0) {
      throw invalidArgument(`${f}.names: must be a non-empty list`);
    }
    s.names.forEach((name, j) => {
      if (typeof name !== 'string' || !/^[a-z0-9_]+$/.test(name)) {
        throw invalidArgument(`${f}.names[${j}]: not a syscall name: ${JSON.stringify(name)}`);
      }
      rules.push({ name, action: act, args });
    });
  });
  return { defaultAction, flags, architectures, rules };
}
