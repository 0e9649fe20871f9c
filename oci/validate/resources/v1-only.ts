// The cgroup v1-only fields of linux.resources, and what happens to each on
// the guest's cgroup v2. One rule for all of them, runc's: runc 1.1's fs2
// manager (libcontainer/cgroups/fs2) never reads them, so on a v2 host runc
// runs the container without them (it warns only for kernel memory, in
// specconv: "Kernel memory settings are ignored and will be removed").
// crun 1.8 refuses most of them instead ("cannot set kernel TCP with
// cgroupv2"); kapsel follows runc, the runtime Docker and containerd call,
// and says in the log what it dropped. docs/compatibility.md has the table.
import type { Obj } from '../fields.js';

export interface V1OnlyRule {
  /** Path under linux.resources. */
  path: string;
  /** Whether the value asks for anything (zero, false and empty do not). */
  isSet: (v: unknown) => boolean;
  /** Why it has no effect on cgroup v2, for the log. */
  why: string;
}

const nonZero = (v: unknown): boolean => v !== undefined && v !== null && v !== 0;
const isTrue = (v: unknown): boolean => v === true;
const nonEmptyObject = (v: unknown): boolean =>
  typeof v === 'object' && v !== null && Object.keys(v).some((k) => nonZero((v as Obj)[k]));

/** The table, in linux.resources order. */
export const V1_ONLY_RULES: readonly V1OnlyRule[] = [
  {
    path: 'memory.kernel',
    isSet: nonZero,
    why: 'cgroup v2 accounts kernel memory with the rest of memory.max',
  },
  { path: 'memory.kernelTCP', isSet: nonZero, why: 'cgroup v2 has no separate TCP buffer limit' },
  {
    path: 'memory.swappiness',
    isSet: (v) => v !== undefined && v !== null,
    why: 'cgroup v2 has no per-cgroup swappiness',
  },
  {
    path: 'memory.disableOOMKiller',
    isSet: isTrue,
    why: 'cgroup v2 cannot disable the OOM killer',
  },
  {
    path: 'memory.useHierarchy',
    isSet: (v) => v === false,
    why: 'cgroup v2 is always hierarchical',
  },
  { path: 'cpu.realtimeRuntime', isSet: nonZero, why: 'cgroup v2 has no realtime bandwidth files' },
  { path: 'cpu.realtimePeriod', isSet: nonZero, why: 'cgroup v2 has no realtime bandwidth files' },
  { path: 'blockIO.leafWeight', isSet: nonZero, why: 'cgroup v2 has no leaf weights' },
  {
    path: 'blockIO.weightDevice[].leafWeight',
    isSet: nonZero,
    why: 'cgroup v2 has no leaf weights',
  },
  { path: 'network.classID', isSet: nonZero, why: 'net_cls does not exist on cgroup v2' },
  {
    path: 'network.priorities',
    isSet: (v) => Array.isArray(v) && v.length > 0,
    why: 'net_prio does not exist on cgroup v2',
  },
];

/** One dropped setting: `field` is its full path, e.g. linux.resources.memory.kernelTCP. */
export interface Ignored {
  field: string;
  why: string;
}

/** Receives every v1-only setting the validator dropped. */
export type IgnoreSink = (ignored: Ignored) => void;

/** Reports `value` under `path` of the table when it is set. */
export function checkV1Only(
  path: string,
  value: unknown,
  field: string,
  sink: IgnoreSink | undefined,
): void {
  const rule = V1_ONLY_RULES.find((r) => r.path === path);
  if (rule === undefined) throw new Error(`no v1-only rule for ${path}`);
  if (rule.isSet(value)) sink?.({ field, why: rule.why });
}

/** Whether a whole network object asks for anything. */
export const networkIsSet = nonEmptyObject;
