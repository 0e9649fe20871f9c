import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  dirIn,
  expandSlice,
  hierarchiesOf,
  innerPathOf,
  ownCgroupsOf,
  type Hierarchy,
} from '../../runtime/src/sandbox/host-cgroup/path.js';

describe('host cgroup paths, read as runc reads cgroupsPath', () => {
  // runc's own table (libcontainer/cgroups/systemd/systemd_test.go TestExpandSlice).
  it.each([
    ['-.slice', '/'],
    ['test.slice', '/test.slice'],
    ['test-a.slice', '/test.slice/test-a.slice'],
    ['test-a-b.slice', '/test.slice/test-a.slice/test-a-b.slice'],
  ])('expands the slice %s to %s', (slice, path) => {
    expect(expandSlice(slice)).toBe(path);
  });

  it.each(['test--a.slice', '-test.slice', 'test-.slice', 'test/a.slice', 'test', '.slice'])(
    'refuses the slice name %s',
    (slice) => {
      expect(() => expandSlice(slice)).toThrow(`invalid slice name: ${slice}`);
    },
  );

  it.each([
    ['/docker/abc', false, { path: '/docker/abc', absolute: true }],
    ['/a/../b//c/', false, { path: '/b/c', absolute: true }],
    ['kubepods/pod1/c', false, { path: 'kubepods/pod1/c', absolute: false }],
    // runc CleanPath: a relative path cannot climb out of the caller's cgroup.
    ['../../etc', false, { path: 'etc', absolute: false }],
    [undefined, false, { path: 'ctr', absolute: false }],
    ['system.slice:docker:abc', true, { path: '/system.slice/docker-abc.scope', absolute: true }],
    [
      'user-1000.slice:crio:x',
      true,
      { path: '/user.slice/user-1000.slice/crio-x.scope', absolute: true },
    ],
    ['kubepods.slice::pod1.slice', true, { path: '/kubepods.slice/pod1.slice', absolute: true }],
    [':kapsel:x', true, { path: '/system.slice/kapsel-x.scope', absolute: true }],
    [undefined, true, { path: '/system.slice/kapsel-ctr.scope', absolute: true }],
  ])('cgroupsPath %s (systemd %s) is %o', (given, systemd, want) => {
    expect(innerPathOf(given, 'ctr', systemd)).toEqual(want);
  });

  it("refuses a systemd cgroupsPath that is not slice:prefix:name, with runc's words", () => {
    expect(() => innerPathOf('/docker/abc', 'ctr', true)).toThrow(
      'expected cgroupsPath to be of format "slice:prefix:name" for systemd cgroups, got "/docker/abc" instead',
    );
  });

  // This machine's layout (hybrid: v1 controllers, name=systemd, unified).
  const mountinfo = [
    '30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
    '31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
    '34 30 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
    '35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct',
    '39 30 0:35 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd',
    '40 30 0:36 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
    '41 30 0:37 /sub /mnt/inner\\040cg rw - cgroup2 cgroup2 rw',
  ].join('\n');
  const own = ownCgroupsOf(
    [
      '9:name=systemd:/',
      '4:memory:/process_api/93',
      '2:cpuacct,cpu:/x',
      '1:cpu:/',
      '0::/',
      '',
    ].join('\n'),
  );

  it('finds every hierarchy of a hybrid host with its controllers', () => {
    expect(hierarchiesOf(mountinfo)).toEqual([
      { version: 1, mountPoint: '/sys/fs/cgroup/cpu', mountRoot: '/', controllers: ['cpu'] },
      { version: 1, mountPoint: '/sys/fs/cgroup/memory', mountRoot: '/', controllers: ['memory'] },
      {
        version: 1,
        mountPoint: '/sys/fs/cgroup/cpu,cpuacct',
        mountRoot: '/',
        controllers: ['cpu', 'cpuacct'],
      },
      {
        version: 1,
        mountPoint: '/sys/fs/cgroup/systemd',
        mountRoot: '/',
        controllers: ['name=systemd'],
      },
      { version: 2, mountPoint: '/sys/fs/cgroup/unified', mountRoot: '/', controllers: [] },
      { version: 2, mountPoint: '/mnt/inner cg', mountRoot: '/sub', controllers: [] },
    ]);
  });

  it("nests a relative path below the caller's own cgroup of each hierarchy, an absolute one at its root", () => {
    const all = hierarchiesOf(mountinfo);
    const at = (i: number): Hierarchy => {
      const h = all[i];
      if (h === undefined) throw new Error(`no hierarchy ${i}`);
      return h;
    };
    const [cpu, memory, cpuacct, systemd, unified, inner] = [0, 1, 2, 3, 4, 5].map(at) as [
      Hierarchy,
      Hierarchy,
      Hierarchy,
      Hierarchy,
      Hierarchy,
      Hierarchy,
    ];
    const rel = innerPathOf('k/c', 'id', false);
    expect(dirIn(memory, rel, own)).toBe('/sys/fs/cgroup/memory/process_api/93/k/c');
    expect(dirIn(cpu, rel, own)).toBe('/sys/fs/cgroup/cpu/k/c');
    // co-mounted controllers, listed in another order in /proc/self/cgroup
    expect(dirIn(cpuacct, rel, own)).toBe('/sys/fs/cgroup/cpu,cpuacct/x/k/c');
    expect(dirIn(systemd, rel, own)).toBe('/sys/fs/cgroup/systemd/k/c');
    expect(dirIn(unified, rel, own)).toBe('/sys/fs/cgroup/unified/k/c');
    const abs = innerPathOf('/docker/abc', 'id', false);
    expect(dirIn(memory, abs, own)).toBe('/sys/fs/cgroup/memory/docker/abc');
    // A mount whose root is a sub-cgroup shows only what lies below it.
    expect(dirIn(inner, innerPathOf('/sub/a', 'id', false), own)).toBe('/mnt/inner cg/a');
    expect(() => dirIn(inner, abs, own)).toThrow('is outside the mount');
  });

  it("reads this host's own mountinfo and cgroup files", () => {
    const found = hierarchiesOf(readFileSync('/proc/self/mountinfo', 'utf8'));
    const own = ownCgroupsOf(readFileSync('/proc/self/cgroup', 'utf8'));
    for (const h of found) expect(h.mountPoint).not.toBe('');
    if (found.some((h) => h.version === 2)) expect(own.has('')).toBe(true);
  });
});
