import type {
  BlkioEntry,
  BlkioStats,
  CpuStats,
  MemoryStats,
  PidsStats,
  StatsContainerResponse,
} from '../../../proto/generated/agent.js';
import { parseFlatKeyed, readCgroupFile } from './fs.js';

/** A limit file's value: "max" (or a missing file) is 0, the proto's "no limit". */
function limitOf(text: string | undefined): number {
  if (text === undefined || text === 'max') return 0;
  const n = Number(text);
  return Number.isFinite(n) ? n : 0;
}

const numberOf = (text: string | undefined): number => {
  const n = Number(text ?? 0);
  return Number.isFinite(n) ? n : 0;
};

/**
 * cpu.stat in microseconds, reported in nanoseconds as runc does. cgroup v2
 * has no per-cpu usage, so percpu stays empty (runc leaves it empty too).
 */
export async function cpuStats(dir: string): Promise<CpuStats | undefined> {
  const text = await readCgroupFile(dir, 'cpu.stat');
  if (text === undefined) return undefined;
  const s = parseFlatKeyed(text);
  const ns = (key: string): number => (s.get(key) ?? 0) * 1000;
  return {
    usage: {
      totalNs: ns('usage_usec'),
      percpuNs: [],
      kernelNs: ns('system_usec'),
      userNs: ns('user_usec'),
    },
    throttling: {
      periods: s.get('nr_periods') ?? 0,
      throttledPeriods: s.get('nr_throttled') ?? 0,
      throttledTimeNs: ns('throttled_usec'),
    },
  };
}

/** memory.current/peak/max, swap, memory.stat as a map, oom_kill from memory.events. */
export async function memoryStats(dir: string): Promise<MemoryStats | undefined> {
  const current = await readCgroupFile(dir, 'memory.current');
  if (current === undefined) return undefined;
  const [peak, max, swapCurrent, swapMax, stat, events] = await Promise.all(
    [
      'memory.peak',
      'memory.max',
      'memory.swap.current',
      'memory.swap.max',
      'memory.stat',
      'memory.events',
    ].map((f) => readCgroupFile(dir, f)),
  );
  return {
    usage: numberOf(current),
    maxUsage: numberOf(peak),
    limit: limitOf(max),
    swapUsage: numberOf(swapCurrent),
    swapLimit: limitOf(swapMax),
    stats: Object.fromEntries(parseFlatKeyed(stat ?? '')),
    oomKills: parseFlatKeyed(events ?? '').get('oom_kill') ?? 0,
  };
}

export async function pidsStats(dir: string): Promise<PidsStats | undefined> {
  const current = await readCgroupFile(dir, 'pids.current');
  if (current === undefined) return undefined;
  return { current: numberOf(current), limit: limitOf(await readCgroupFile(dir, 'pids.max')) };
}

/**
 * io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" per device)
 * in blkio's shape, with the ops runc's v2 stats use: Read, Write.
 */
export function parseIoStat(text: string): BlkioStats {
  const bytes: BlkioEntry[] = [];
  const ios: BlkioEntry[] = [];
  for (const line of text.split('\n')) {
    const [dev, ...pairs] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (m === null) continue;
    const major = Number(m[1]);
    const minor = Number(m[2]);
    for (const pair of pairs) {
      const [key, value] = pair.split('=');
      const entry = (op: string): BlkioEntry => ({ major, minor, op, value: numberOf(value) });
      if (key === 'rbytes') bytes.push(entry('Read'));
      else if (key === 'wbytes') bytes.push(entry('Write'));
      else if (key === 'rios') ios.push(entry('Read'));
      else if (key === 'wios') ios.push(entry('Write'));
    }
  }
  return { ioServiceBytesRecursive: bytes, ioServicedRecursive: ios };
}

/** What StatsContainer answers; a controller that is not enabled leaves its part unset. */
export async function readStats(dir: string): Promise<StatsContainerResponse> {
  const [cpu, memory, pids, io] = await Promise.all([
    cpuStats(dir),
    memoryStats(dir),
    pidsStats(dir),
    readCgroupFile(dir, 'io.stat'),
  ]);
  return { cpu, memory, pids, blkio: io === undefined ? undefined : parseIoStat(io) };
}
