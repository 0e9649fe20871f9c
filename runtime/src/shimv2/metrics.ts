import type { StatsContainerResponse } from '../../../proto/generated/agent.js';
import {
  Metrics,
  MemoryStat,
  type IOEntry,
} from '../../../proto/generated/github.com/containerd/cgroups/v2/stats/metrics.js';
import type { Any } from '../../../proto/generated/google/protobuf/any.js';

/**
 * The type URL containerd's typeurl gives cgroups v2 Metrics (the proto's full
 * name, no prefix: gogo registered it so); `ctr task metrics` and the CRI
 * plugin's ContainerStats decode the Stats Any by it.
 */
export const METRICS_V2_TYPE_URL = 'io.containerd.cgroups.v2.Metrics';

/** What cgroup v2's "max" reads as in containerd's metrics: math.MaxUint64. */
const UNLIMITED = 18446744073709551615n;

const big = (n: number | undefined): bigint => BigInt(Math.max(0, Math.floor(n ?? 0)));
/** The agent's 0 ("no limit") as MaxUint64. */
const limit = (n: number | undefined): bigint => (n === undefined || n === 0 ? UNLIMITED : big(n));

/** memory.stat keys (cgroup-v2.rst) by MemoryStat field. */
const MEMORY_STAT_KEYS: Partial<Record<keyof MemoryStat, string>> = {
  anon: 'anon',
  file: 'file',
  kernelStack: 'kernel_stack',
  slab: 'slab',
  sock: 'sock',
  shmem: 'shmem',
  fileMapped: 'file_mapped',
  fileDirty: 'file_dirty',
  fileWriteback: 'file_writeback',
  anonThp: 'anon_thp',
  inactiveAnon: 'inactive_anon',
  activeAnon: 'active_anon',
  inactiveFile: 'inactive_file',
  activeFile: 'active_file',
  unevictable: 'unevictable',
  slabReclaimable: 'slab_reclaimable',
  slabUnreclaimable: 'slab_unreclaimable',
  pgfault: 'pgfault',
  pgmajfault: 'pgmajfault',
  workingsetRefault: 'workingset_refault',
  workingsetActivate: 'workingset_activate',
  workingsetNodereclaim: 'workingset_nodereclaim',
  pgrefill: 'pgrefill',
  pgscan: 'pgscan',
  pgsteal: 'pgsteal',
  pgactivate: 'pgactivate',
  pgdeactivate: 'pgdeactivate',
  pglazyfree: 'pglazyfree',
  pglazyfreed: 'pglazyfreed',
  thpFaultAlloc: 'thp_fault_alloc',
  thpCollapseAlloc: 'thp_collapse_alloc',
};

/**
 * The guest's cgroup v2 stats of a container (the agent's StatsContainer)
 * as containerd's cgroups v2 Metrics (containerd/cgroups v2/stats/
 * metrics.proto), the same fields the runc shim fills from the host's
 * cgroup: usage in microseconds, limits of 0 ("none" to the agent) as
 * MaxUint64, memory.stat by key, memory.events oom_kill.
 */
export function toCgroupV2Metrics(s: StatsContainerResponse): Metrics {
  const memory = MemoryStat.fromPartial({});
  if (s.memory !== undefined) {
    for (const [field, key] of Object.entries(MEMORY_STAT_KEYS)) {
      const v = s.memory.stats[key];
      if (v !== undefined) (memory as unknown as Record<string, bigint>)[field] = big(v);
    }
    memory.usage = big(s.memory.usage);
    memory.usageLimit = limit(s.memory.limit);
    memory.swapUsage = big(s.memory.swapUsage);
    memory.swapLimit = limit(s.memory.swapLimit);
  }
  const io = new Map<string, IOEntry>();
  const entry = (major: number, minor: number): IOEntry => {
    const key = `${major}:${minor}`;
    let e = io.get(key);
    if (e === undefined) {
      e = { major: big(major), minor: big(minor), rbytes: 0n, wbytes: 0n, rios: 0n, wios: 0n };
      io.set(key, e);
    }
    return e;
  };
  for (const b of s.blkio?.ioServiceBytesRecursive ?? []) {
    const op = b.op.toLowerCase();
    if (op === 'read') entry(b.major, b.minor).rbytes = big(b.value);
    if (op === 'write') entry(b.major, b.minor).wbytes = big(b.value);
  }
  for (const b of s.blkio?.ioServicedRecursive ?? []) {
    const op = b.op.toLowerCase();
    if (op === 'read') entry(b.major, b.minor).rios = big(b.value);
    if (op === 'write') entry(b.major, b.minor).wios = big(b.value);
  }
  const usec = (ns: number | undefined): bigint => big((ns ?? 0) / 1000);
  return Metrics.fromPartial({
    pids: { current: big(s.pids?.current), limit: big(s.pids?.limit) },
    cpu: {
      usageUsec: usec(s.cpu?.usage?.totalNs),
      userUsec: usec(s.cpu?.usage?.userNs),
      systemUsec: usec(s.cpu?.usage?.kernelNs),
      nrPeriods: big(s.cpu?.throttling?.periods),
      nrThrottled: big(s.cpu?.throttling?.throttledPeriods),
      throttledUsec: usec(s.cpu?.throttling?.throttledTimeNs),
    },
    memory,
    io: { usage: [...io.values()] },
    memoryEvents: { oomKill: big(s.memory?.oomKills) },
  });
}

/** The Stats reply's Any. */
export function metricsAny(s: StatsContainerResponse): Any {
  return {
    typeUrl: METRICS_V2_TYPE_URL,
    value: Buffer.from(Metrics.encode(toCgroupV2Metrics(s)).finish()),
  };
}
