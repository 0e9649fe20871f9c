import { describe, expect, it } from 'vitest';
import { formatRuncStats } from '../../runtime/src/container/stats-format.js';

describe("runc's events --stats shape", () => {
  it('renames fields as runc does, in nanoseconds, and writes an unlimited limit as MaxUint64', () => {
    const line = formatRuncStats('c1', {
      cpu: {
        usage: { totalNs: 5000, percpuNs: [], kernelNs: 1000, userNs: 4000 },
        throttling: { periods: 10, throttledPeriods: 3, throttledTimeNs: 700 },
      },
      memory: {
        usage: 4096,
        maxUsage: 8192,
        limit: 0,
        swapUsage: 0,
        swapLimit: 0,
        stats: { anon: 100, file: 200 },
        oomKills: 1,
      },
      pids: { current: 2, limit: 20 },
      blkio: {
        ioServiceBytesRecursive: [{ major: 254, minor: 0, op: 'Read', value: 512 }],
        ioServicedRecursive: [],
      },
    });
    expect(line).toContain('"limit":18446744073709551615,');
    expect(JSON.parse(line.replace('18446744073709551615', '-1'))).toEqual({
      type: 'stats',
      id: 'c1',
      data: {
        cpu: {
          usage: { total: 5000, kernel: 1000, user: 4000 },
          throttling: { periods: 10, throttled_periods: 3, throttled_time: 700 },
        },
        memory: {
          usage: { limit: -1, usage: 4096, max: 8192, failcnt: 0 },
          swap: { limit: 18446744073709552000, failcnt: 0 },
          cache: 200,
          raw: { anon: 100, file: 200 },
        },
        pids: { current: 2, limit: 20 },
        blkio: { ioServiceBytesRecursive: [{ major: 254, minor: 0, op: 'Read', value: 512 }] },
      },
    });
  });

  it('leaves out what the guest did not report', () => {
    const line = formatRuncStats('c2', {
      cpu: undefined,
      memory: undefined,
      pids: undefined,
      blkio: undefined,
    });
    expect(JSON.parse(line)).toEqual({ type: 'stats', id: 'c2', data: {} });
  });
});
