import { describe, expect, it } from 'vitest';
import { StatsContainerResponse } from '../../proto/generated/agent.js';
import { Metrics } from '../../proto/generated/github.com/containerd/cgroups/v2/stats/metrics.js';
import { podKey, socketPathOf, vmDirOfPod } from '../../runtime/src/shimv2/address.js';
import { FlagError, parseShimFlags } from '../../runtime/src/shimv2/flags.js';
import { METRICS_V2_TYPE_URL, metricsAny } from '../../runtime/src/shimv2/metrics.js';

describe('shim v2 command line', () => {
  it('reads the flags containerd passes to start (runtime/v2/shim/util.go Command)', () => {
    const f = parseShimFlags([
      '-namespace',
      'k8s.io',
      '-address',
      '/run/containerd/containerd.sock',
      '-publish-binary',
      '/usr/bin/containerd',
      '-id',
      'abc',
      '-debug',
      'start',
    ]);
    expect(f).toMatchObject({
      namespace: 'k8s.io',
      address: '/run/containerd/containerd.sock',
      publishBinary: '/usr/bin/containerd',
      id: 'abc',
      debug: true,
      action: 'start',
    });
  });

  it('takes --name=value and the delete action with -bundle', () => {
    const f = parseShimFlags(['--namespace=default', '-id', 'x', '-bundle', '/b', 'delete']);
    expect(f).toMatchObject({ namespace: 'default', id: 'x', bundle: '/b', action: 'delete' });
  });

  it.each([
    [['-nope', 'x'], 'flag provided but not defined: -nope'],
    [['-id'], 'flag needs an argument: -id'],
  ])('refuses %j', (argv, message) => {
    expect(() => parseShimFlags(argv)).toThrow(FlagError);
    expect(() => parseShimFlags(argv)).toThrow(message);
  });
});

describe('shim v2 pod addresses', () => {
  it('gives every container of a pod one socket, within sockaddr_un', () => {
    const a = podKey('/run/containerd/containerd.sock', 'k8s.io', 'sandbox-1');
    expect(podKey('/run/containerd/containerd.sock', 'k8s.io', 'sandbox-1')).toBe(a);
    expect(podKey('/run/containerd/containerd.sock', 'default', 'sandbox-1')).not.toBe(a);
    expect(podKey('/tmp/other.sock', 'k8s.io', 'sandbox-1')).not.toBe(a);
    expect(socketPathOf(a).length).toBeLessThan(108);
    expect(`${vmDirOfPod(a)}/monitor.sock`.length).toBeLessThan(108);
  });
});

describe('guest cgroup stats as containerd cgroups v2 Metrics', () => {
  const stats = StatsContainerResponse.fromPartial({
    cpu: {
      usage: { totalNs: 5_000_000, userNs: 3_000_000, kernelNs: 2_000_000 },
      throttling: { periods: 4, throttledPeriods: 1, throttledTimeNs: 7000 },
    },
    memory: {
      usage: 4096 * 10,
      limit: 64 << 20,
      swapLimit: 0,
      stats: { anon: 8192, file: 4096, pgfault: 99 },
      oomKills: 2,
    },
    pids: { current: 3, limit: 0 },
    blkio: {
      ioServiceBytesRecursive: [
        { major: 254, minor: 0, op: 'Read', value: 512 },
        { major: 254, minor: 0, op: 'Write', value: 1024 },
      ],
      ioServicedRecursive: [{ major: 254, minor: 0, op: 'Read', value: 1 }],
    },
  });

  it('is an Any of the type ctr task metrics decodes, with the fields mapped', () => {
    const any = metricsAny(stats);
    expect(any.typeUrl).toBe(METRICS_V2_TYPE_URL);
    const m = Metrics.decode(any.value);
    expect(m.cpu).toMatchObject({
      usageUsec: 5000n,
      userUsec: 3000n,
      systemUsec: 2000n,
      nrPeriods: 4n,
      nrThrottled: 1n,
      throttledUsec: 7n,
    });
    expect(m.memory).toMatchObject({
      usage: 40960n,
      usageLimit: BigInt(64 << 20),
      anon: 8192n,
      file: 4096n,
      pgfault: 99n,
    });
    expect(m.memoryEvents?.oomKill).toBe(2n);
    expect(m.pids).toMatchObject({ current: 3n, limit: 0n });
    expect(m.io?.usage).toEqual([
      { major: 254n, minor: 0n, rbytes: 512n, wbytes: 1024n, rios: 1n, wios: 0n },
    ]);
  });

  it('reports no limit as MaxUint64, as the runc shim reads "max"', () => {
    const m = Metrics.decode(metricsAny(stats).value);
    expect(m.memory?.swapLimit).toBe(18446744073709551615n);
  });
});
