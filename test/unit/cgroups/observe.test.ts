import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { OomWatcher, type OomEvent } from '../../../agent/src/cgroups/events.js';
import { setFrozen } from '../../../agent/src/cgroups/freezer.js';
import { CgroupManager } from '../../../agent/src/cgroups/manager.js';
import { containerCgroupName } from '../../../agent/src/cgroups/path.js';
import { readStats } from '../../../agent/src/cgroups/stats.js';
import { AgentError } from '../../../agent/src/errors.js';
import { EventHub } from '../../../agent/src/events.js';
import { FakeNative } from '../../../agent/src/native/fake.js';
import { Sandbox } from '../../../agent/src/sandbox.js';
import { fakeCgroupDir } from '../../support/fake-cgroup.js';
import { testSpec } from '../../support/spec.js';

const dirs: string[] = [];
const leaf = (): string => {
  const d = fakeCgroupDir();
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const log = pino({ level: 'silent' });

describe('stats from cgroup files', () => {
  it('reads cpu.stat, memory.*, pids.* and io.stat into the proto shape', async () => {
    const dir = leaf();
    const w = (f: string, s: string): void => {
      writeFileSync(join(dir, f), s);
    };
    w(
      'cpu.stat',
      'usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 40\nnr_throttled 12\nthrottled_usec 9000\n',
    );
    w('memory.current', '4096\n');
    w('memory.peak', '8192\n');
    w('memory.max', 'max\n');
    w('memory.stat', 'anon 1024\nfile 2048\n');
    w('memory.events', 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n');
    w('pids.current', '3\n');
    w('pids.max', '20\n');
    w('io.stat', '254:0 rbytes=512 wbytes=1024 rios=1 wios=2 dbytes=0 dios=0\n');
    expect(await readStats(dir)).toEqual({
      cpu: {
        usage: { totalNs: 1_500_000, percpuNs: [], kernelNs: 500_000, userNs: 1_000_000 },
        throttling: { periods: 40, throttledPeriods: 12, throttledTimeNs: 9_000_000 },
      },
      memory: {
        usage: 4096,
        maxUsage: 8192,
        limit: 0,
        swapUsage: 0,
        swapLimit: 0,
        stats: { anon: 1024, file: 2048 },
        oomKills: 1,
      },
      pids: { current: 3, limit: 20 },
      blkio: {
        ioServiceBytesRecursive: [
          { major: 254, minor: 0, op: 'Read', value: 512 },
          { major: 254, minor: 0, op: 'Write', value: 1024 },
        ],
        ioServicedRecursive: [
          { major: 254, minor: 0, op: 'Read', value: 1 },
          { major: 254, minor: 0, op: 'Write', value: 2 },
        ],
      },
    });
  });
});

describe('freezer', () => {
  it('writes cgroup.freeze and returns once cgroup.events says frozen 1', async () => {
    const dir = leaf();
    writeFileSync(join(dir, 'cgroup.events'), 'populated 1\nfrozen 0\n');
    const done = setFrozen(dir, true);
    // The "kernel" finishes freezing a little later.
    setTimeout(() => {
      writeFileSync(join(dir, 'cgroup.events'), 'populated 1\nfrozen 1\n');
    }, 200);
    await done;
    expect(readFileSync(join(dir, 'cgroup.freeze'), 'utf8')).toBe('1');
  });

  it('gives up when the freeze never happens, and thaws again', async () => {
    const dir = leaf();
    writeFileSync(join(dir, 'cgroup.events'), 'populated 1\nfrozen 0\n');
    const err = await setFrozen(dir, true, 300).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).message).toContain('did not show frozen 1 within 300 ms');
    expect(readFileSync(join(dir, 'cgroup.freeze'), 'utf8')).toBe('0');
  });
});

describe('OOM events', () => {
  it('reports each rise of memory.events oom_kill, naming the container', async () => {
    const dir = leaf();
    writeFileSync(join(dir, 'memory.events'), 'oom 0\noom_kill 0\n');
    const seen: OomEvent[] = [];
    const w = new OomWatcher((e) => seen.push(e));
    await w.add('c1', dir);
    writeFileSync(join(dir, 'memory.events'), 'oom 2\noom_kill 2\n');
    // remove() looks once more, so the result does not depend on inotify timing.
    await w.remove('c1');
    expect(seen.map((e) => [e.containerId, e.type])).toEqual([
      ['c1', 'oom'],
      ['c1', 'oom'],
    ]);
  });

  it('keeps events for the first GetEvents stream when none is open', () => {
    const hub = new EventHub();
    hub.publish({ containerId: 'a', type: 'oom', timeMs: 1 });
    const got: string[] = [];
    const off = hub.subscribe((e) => got.push(e.containerId));
    hub.publish({ containerId: 'b', type: 'oom', timeMs: 2 });
    off();
    expect(got).toEqual(['a', 'b']);
  });
});

describe('cgroupsPath', () => {
  it('is only a name inside the kapsel subtree', () => {
    expect(containerCgroupName('c1', undefined)).toBe('c1');
    expect(containerCgroupName('c1', '/docker/c1')).toBe('docker/c1');
    expect(containerCgroupName('c1', 'system.slice:docker:c1')).toBe('docker-c1');
    expect(() => containerCgroupName('c1', '/../../etc')).toThrow(
      'linux.cgroupsPath: segment ".."',
    );
    expect(() => containerCgroupName('c1', '/')).toThrow('linux.cgroupsPath: "/" names no cgroup');
  });
});

describe('Sandbox with cgroups (fake native, temp cgroup root)', () => {
  function setup() {
    const root = mkdtempSync(join(tmpdir(), 'kapsel-cgroot-'));
    dirs.push(root);
    writeFileSync(join(root, 'cgroup.controllers'), '');
    writeFileSync(join(root, 'cgroup.subtree_control'), '');
    writeFileSync(join(root, 'cpuset.cpus.effective'), '0\n');
    const native = new FakeNative();
    const cgroups = new CgroupManager({ root, native, log, closeFd: () => undefined });
    return { root, native, sandbox: new Sandbox(native, log, cgroups) };
  }

  it('creates the cgroup first and has the init born in it', async () => {
    const { root, native, sandbox } = setup();
    await sandbox.createContainer('c1', JSON.stringify(testSpec('/rootfs', ['true'])), []);
    expect(native.callsOf('spawn')[0]?.req.cgroup).toBe(join(root, 'kapsel/c1'));
    expect(sandbox.get('c1').cgroupDir).toBe(join(root, 'kapsel/c1'));
    expect(native.callsOf('attachDeviceFilter')[0]?.cgroupDir).toBe(join(root, 'kapsel/c1'));
  });

  it('refuses cpus beyond the guest naming the field, with no cgroup, mount or process made', async () => {
    const { root, native, sandbox } = setup();
    const spec = testSpec('/rootfs', ['true']);
    spec.linux = { ...spec.linux, resources: { cpu: { cpus: '0-999' } } };
    const err = await sandbox
      .createContainer('c2', JSON.stringify(spec), [
        {
          driver: 'virtiofs',
          source: 't',
          mountPoint: '/m',
          options: [],
        },
      ])
      .catch((e: unknown) => e);
    expect((err as AgentError).message).toContain('linux.resources.cpu.cpus');
    expect(native.calls).toEqual([]);
    expect(existsSync(join(root, 'kapsel/c2'))).toBe(false);
  });

  it('removes the cgroup when the spawn fails', async () => {
    const { root, native, sandbox } = setup();
    const { NativeError } = await import('../../../agent/src/native/types.js');
    native.failNextSpawn(new NativeError('clone3: boom', 22));
    await expect(
      sandbox.createContainer('c3', JSON.stringify(testSpec('/rootfs', ['true'])), []),
    ).rejects.toThrow('boom');
    expect(existsSync(join(root, 'kapsel/c3'))).toBe(false);
  });
});
