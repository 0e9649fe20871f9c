// StatsContainerResponse (the agent's answer) in the shape of runc's
// `events --stats` output (libcontainer's types.Event with types.Stats), so
// tools that read runc's JSON read ours. Field names and omitempty follow
// runc's types/events.go.
import type { BlkioEntry, StatsContainerResponse } from '../../../proto/generated/agent.js';

/** What runc reports for an unlimited cgroup v2 limit ("max"): math.MaxUint64. */
export const UNLIMITED = 18446744073709551615n;

type Json = number | bigint | string | Json[] | { [key: string]: Json };

export interface RuncStatsEvent {
  type: 'stats';
  id: string;
  data: { [key: string]: Json };
}

/** Go's omitempty for numbers: a zero is left out. */
function put(obj: Record<string, Json>, key: string, value: number | undefined): void {
  if (value !== undefined && value !== 0) obj[key] = value;
}

function entries(list: readonly BlkioEntry[]): Json[] {
  return list.map((e) => ({ major: e.major, minor: e.minor, op: e.op, value: e.value }));
}

/** The agent's 0 ("no limit") becomes runc's MaxUint64. */
const limit = (n: number | undefined): number | bigint =>
  n === undefined || n === 0 ? UNLIMITED : n;

export function toRuncStats(id: string, s: StatsContainerResponse): RuncStatsEvent {
  const data: Record<string, Json> = {};
  if (s.cpu !== undefined) {
    const usage: Record<string, Json> = {};
    put(usage, 'total', s.cpu.usage?.totalNs);
    if ((s.cpu.usage?.percpuNs.length ?? 0) > 0) usage['percpu'] = s.cpu.usage?.percpuNs ?? [];
    usage['kernel'] = s.cpu.usage?.kernelNs ?? 0;
    usage['user'] = s.cpu.usage?.userNs ?? 0;
    const throttling: Record<string, Json> = {};
    put(throttling, 'periods', s.cpu.throttling?.periods);
    put(throttling, 'throttled_periods', s.cpu.throttling?.throttledPeriods);
    put(throttling, 'throttled_time', s.cpu.throttling?.throttledTimeNs);
    data['cpu'] = { usage, throttling };
  }
  if (s.memory !== undefined) {
    const m = s.memory;
    const usage: Record<string, Json> = { limit: limit(m.limit), failcnt: 0 };
    put(usage, 'usage', m.usage);
    put(usage, 'max', m.maxUsage);
    const swap: Record<string, Json> = { limit: limit(m.swapLimit), failcnt: 0 };
    put(swap, 'usage', m.swapUsage);
    const memory: Record<string, Json> = { usage, swap };
    // runc's v2 stats: cache is memory.stat's "file".
    put(memory, 'cache', m.stats['file']);
    if (Object.keys(m.stats).length > 0) memory['raw'] = { ...m.stats };
    data['memory'] = memory;
  }
  if (s.pids !== undefined) {
    const pids: Record<string, Json> = {};
    put(pids, 'current', s.pids.current);
    put(pids, 'limit', s.pids.limit);
    data['pids'] = pids;
  }
  if (s.blkio !== undefined) {
    const blkio: Record<string, Json> = {};
    if (s.blkio.ioServiceBytesRecursive.length > 0) {
      blkio['ioServiceBytesRecursive'] = entries(s.blkio.ioServiceBytesRecursive);
    }
    if (s.blkio.ioServicedRecursive.length > 0) {
      blkio['ioServicedRecursive'] = entries(s.blkio.ioServicedRecursive);
    }
    data['blkio'] = blkio;
  }
  return { type: 'stats', id, data };
}

/** One line of `events --stats` output; bigints (MaxUint64) are written exactly. */
export function formatRuncStats(id: string, s: StatsContainerResponse): string {
  return JSON.stringify(toRuncStats(id, s), (_k, v: unknown) =>
    typeof v === 'bigint' ? `\u0000big${v.toString()}` : v,
  ).replace(/"\\u0000big(\d+)"/g, '$1');
}
