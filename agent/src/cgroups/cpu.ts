import type { CpuResources, LinuxResources } from '../../../oci/resources.js';
import { parseFlatKeyed, readCgroupFile, writeCgroupFile } from './fs.js';
import type { Controller } from './types.js';
import type { CpuStats } from '../../../proto/generated/agent.js';

/** The kernel's default CFS period, and the one runc fills in when only a quota is given. */
export const DEFAULT_PERIOD_US = 100_000;

/**
 * cpu.shares (2..262144, default 1024) to cpu.weight (1..10000, default 100),
 * runc's ConvertCPUSharesToCgroupV2Value as documented in runc's
 * docs/cgroup-v2.md and crun's cgroup-utils.c: a linear map of the two
 * ranges. 0 means unset.
 */
export function sharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

/**
 * "$QUOTA $PERIOD" for cpu.max. A quota without a period keeps the period
 * the cgroup already has (runc reads it back the same way); a period alone
 * keeps the quota.
 */
export async function cpuMaxValue(cpu: CpuResources, dir: string): Promise<string | undefined> {
  if (cpu.quota === undefined && cpu.period === undefined) return undefined;
  const current = (await readCgroupFile(dir, 'cpu.max'))?.split(' ') ?? [];
  const quota =
    cpu.quota === undefined ? (current[0] ?? 'max') : cpu.quota < 0 ? 'max' : String(cpu.quota);
  const period =
    cpu.period !== undefined && cpu.period !== 0
      ? String(cpu.period)
      : (current[1] ?? String(DEFAULT_PERIOD_US));
  return `${quota} ${period}`;
}

/** cpu.weight (shares), cpu.max (quota/period), cpu.max.burst, cpu.idle. */
export const cpuController: Controller = {
  name: 'cpu',
  async apply(resources: LinuxResources, dir: string): Promise<void> {
    const cpu = resources.cpu;
    if (cpu === undefined) return;
    if (cpu.shares !== undefined && cpu.shares !== 0) {
      await writeCgroupFile(
        dir,
        'cpu.weight',
        String(sharesToWeight(cpu.shares)),
        'linux.resources.cpu.shares',
      );
    }
    const max = await cpuMaxValue(cpu, dir);
    if (max !== undefined) {
      await writeCgroupFile(dir, 'cpu.max', max, 'linux.resources.cpu.quota');
    }
    if (cpu.burst !== undefined) {
      await writeCgroupFile(dir, 'cpu.max.burst', String(cpu.burst), 'linux.resources.cpu.burst');
    }
    if (cpu.idle !== undefined) {
      await writeCgroupFile(dir, 'cpu.idle', String(cpu.idle), 'linux.resources.cpu.idle');
    }
  },
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
