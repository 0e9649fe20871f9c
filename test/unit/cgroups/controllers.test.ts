import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { cpuMaxValue, sharesToWeight } from '../../../agent/src/cgroups/cpu.js';
import { blkioWeightToIoWeight, ioMaxLine } from '../../../agent/src/cgroups/io.js';
import { CgroupManager } from '../../../agent/src/cgroups/manager.js';
import { swapMaxValue } from '../../../agent/src/cgroups/memory.js';
import { AgentError } from '../../../agent/src/errors.js';
import { FakeNative } from '../../../agent/src/native/fake.js';
import { runDeviceFilter } from '../../support/device-filter-interp.js';
import { fakeCgroupDir, LEAF_FILES } from '../../support/fake-cgroup.js';

const dirs: string[] = [];
function leaf(files?: readonly string[]): string {
  const d = fakeCgroupDir(files);
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function manager(native = new FakeNative(), closed: number[] = []): CgroupManager {
  return new CgroupManager({
    root: '/nonexistent',
    native,
    log: pino({ level: 'silent' }),
    closeFd: (fd) => closed.push(fd),
  });
}

const read = (dir: string, file: string): string => readFileSync(join(dir, file), 'utf8');

describe('conversions runc makes for cgroup v2', () => {
  it('maps cpu shares onto cpu.weight linearly (2 -> 1, 1024 -> 39, 262144 -> 10000)', () => {
    expect(sharesToWeight(0)).toBe(0);
    expect(sharesToWeight(2)).toBe(1);
    expect(sharesToWeight(1024)).toBe(39);
    expect(sharesToWeight(262144)).toBe(10000);
  });

  it('maps blkio weight onto io.weight (10 -> 1, 500 -> 4950, 1000 -> 10000)', () => {
    expect(blkioWeightToIoWeight(10)).toBe(1);
    expect(blkioWeightToIoWeight(500)).toBe(4950);
    expect(blkioWeightToIoWeight(1000)).toBe(10000);
  });

  it('turns OCI memory+swap into memory.swap.max', () => {
    expect(swapMaxValue({ limit: 100, swap: 300 })).toBe('200');
    expect(swapMaxValue({ limit: 100, swap: 100 })).toBe('0');
    expect(swapMaxValue({ limit: -1 })).toBe('max');
    expect(swapMaxValue({ limit: 100, swap: -1 })).toBe('max');
    expect(swapMaxValue({ limit: 100 })).toBeUndefined();
  });

  it('keeps the current period when only a quota is given, and lifts the quota with -1', async () => {
    const dir = leaf();
    writeFileSync(join(dir, 'cpu.max'), 'max 250000\n');
    expect(await cpuMaxValue({ quota: 50000 }, dir)).toBe('50000 250000');
    expect(await cpuMaxValue({ quota: -1, period: 100000 }, dir)).toBe('max 100000');
    expect(await cpuMaxValue({ period: 20000 }, dir)).toBe('max 20000');
    expect(await cpuMaxValue({}, dir)).toBeUndefined();
  });

  it('writes one io.max line per device and key, 0 lifting the limit', () => {
    expect(ioMaxLine({ major: 8, minor: 0, rate: 1048576 }, 'rbps')).toBe('8:0 rbps=1048576');
    expect(ioMaxLine({ major: 8, minor: 16, rate: 0 }, 'wiops')).toBe('8:16 wiops=max');
  });
});

describe('CgroupManager.apply into a cgroup directory', () => {
  it('writes each resource to the file the kernel reads it from', async () => {
    const dir = leaf();
    const native = new FakeNative();
    await manager(native).apply(dir, {
      memory: { limit: 67108864, reservation: 1048576, swap: 134217728 },
      cpu: { shares: 1024, quota: 50000, period: 100000, cpus: '0', mems: '0', burst: 1000 },
      pids: { limit: 20 },
      blockIO: { weight: 500, throttleWriteBpsDevice: [{ major: 254, minor: 0, rate: 4096 }] },
      hugepageLimits: [{ pageSize: '2MB', limit: 4194304 }],
      unified: { 'memory.high': '60000000' },
    });
    expect(read(dir, 'memory.max')).toBe('67108864');
    expect(read(dir, 'memory.low')).toBe('1048576');
    expect(read(dir, 'memory.swap.max')).toBe('67108864');
    expect(read(dir, 'cpu.weight')).toBe('39');
    expect(read(dir, 'cpu.max')).toBe('50000 100000');
    expect(read(dir, 'cpu.max.burst')).toBe('1000');
    expect(read(dir, 'cpuset.cpus')).toBe('0');
    expect(read(dir, 'cpuset.mems')).toBe('0');
    expect(read(dir, 'pids.max')).toBe('20');
    expect(read(dir, 'io.weight')).toBe('4950');
    expect(read(dir, 'io.max')).toBe('254:0 wbps=4096');
    expect(read(dir, 'hugetlb.2MB.max')).toBe('4194304');
    expect(read(dir, 'memory.high')).toBe('60000000');
    // The device program is always attached, to this directory.
    expect(native.callsOf('attachDeviceFilter').map((c) => c.cgroupDir)).toEqual([dir]);
  });

  it('writes "max" for unlimited memory, swap and pids', async () => {
    const dir = leaf();
    await manager().apply(dir, { memory: { limit: -1 }, pids: { limit: -1 } });
    expect(read(dir, 'memory.max')).toBe('max');
    expect(read(dir, 'memory.swap.max')).toBe('max');
    expect(read(dir, 'pids.max')).toBe('max');
  });

  it('uses io.bfq.weight with the blkio scale when BFQ offers it', async () => {
    const dir = leaf([...LEAF_FILES, 'io.bfq.weight']);
    await manager().apply(dir, { blockIO: { weight: 500 } });
    expect(read(dir, 'io.bfq.weight')).toBe('500');
    expect(read(dir, 'io.weight')).toBe('');
  });

  it('names the field when a controller is missing from the cgroup', async () => {
    const dir = leaf(['cgroup.events']);
    const err = await manager()
      .apply(dir, { pids: { limit: 20 } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).message).toMatch(
      /^linux\.resources\.pids\.limit: .*pids\.max does not exist \(controller not available/,
    );
  });

  it('leaves files of fields an update does not name alone, and swaps the device program', async () => {
    const dir = leaf();
    const native = new FakeNative();
    const closed: number[] = [];
    const m = manager(native, closed);
    await m.apply(dir, { memory: { limit: 1000000 }, pids: { limit: 5 } });
    await m.apply(dir, { memory: { limit: 2000000 } });
    expect(read(dir, 'memory.max')).toBe('2000000');
    expect(read(dir, 'pids.max')).toBe('5');
    // No devices in the update: the first program stays.
    expect(native.callsOf('attachDeviceFilter')).toHaveLength(1);
    await m.apply(dir, { devices: [{ allow: true, access: 'rwm' }] });
    const calls = native.callsOf('attachDeviceFilter');
    expect(calls).toHaveLength(2);
    expect(calls[1]?.replaceFd).toBe(100);
    const prog = calls[1]?.program ?? Buffer.alloc(0);
    expect(runDeviceFilter(prog, 'b', 8, 0, 'rw')).toBe(true);
  });
});
