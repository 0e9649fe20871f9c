// Where on the host a sandbox's cgroup goes: linux.cgroupsPath read as runc
// reads it (libcontainer/specconv CreateCgroupConfig, cgroups/fs subsysPath,
// cgroups/systemd ExpandSlice and getUnitName), placed in every mounted
// hierarchy: each cgroup v1 controller mount and the v2 (unified) one.
import { isAbsolute, join, posix } from 'node:path';
import { RuntimeError } from '../../sys/errors.js';

/** One mounted cgroup hierarchy of the host, from /proc/self/mountinfo. */
export interface Hierarchy {
  version: 1 | 2;
  mountPoint: string;
  /** The cgroup the mount shows as its root (mountinfo field 4). */
  mountRoot: string;
  /** v1: the mount's controllers and `name=` options; v2: empty. */
  controllers: string[];
}

/** The cgroup a hierarchy shows for a pid, keyed as /proc/PID/cgroup names it. */
export type OwnCgroups = Map<string, string>;

/** Where a container's cgroup goes, before it is placed in each hierarchy. */
export interface InnerPath {
  path: string;
  /** From the hierarchy's root; else below the caller's own cgroup (cgroupfs). */
  absolute: boolean;
}

const V1_KNOWN = new Set([
  'cpuset',
  'cpu',
  'cpuacct',
  'memory',
  'devices',
  'freezer',
  'net_cls',
  'net_prio',
  'blkio',
  'perf_event',
  'hugetlb',
  'pids',
  'rdma',
  'misc',
]);

/** Parses /proc/self/mountinfo into the cgroup hierarchies it holds. */
export function hierarchiesOf(mountinfo: string): Hierarchy[] {
  const out: Hierarchy[] = [];
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (left === undefined || right === undefined) continue;
    const f = left.split(' ');
    const [fstype, , superOpts = ''] = right.split(' ');
    const mountRoot = unescape(f[3] ?? '/');
    const mountPoint = unescape(f[4] ?? '');
    if (fstype === 'cgroup2') {
      out.push({ version: 2, mountPoint, mountRoot, controllers: [] });
    } else if (fstype === 'cgroup') {
      const controllers = superOpts
        .split(',')
        .filter((o) => V1_KNOWN.has(o) || o.startsWith('name='));
      if (controllers.length > 0) out.push({ version: 1, mountPoint, mountRoot, controllers });
    }
  }
  return out;
}

/** Parses /proc/PID/cgroup: `ID:CONTROLLERS:PATH`, v2 as `0::PATH`. */
export function ownCgroupsOf(procCgroup: string): OwnCgroups {
  const own: OwnCgroups = new Map();
  for (const line of procCgroup.split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m !== null) own.set(m[1] ?? '', m[2] ?? '/');
  }
  return own;
}

/**
 * linux.cgroupsPath as runc takes it. cgroupfs (default): cleaned as runc's
 * utils.CleanPath (a relative path cannot climb out with ".."), absolute
 * from each hierarchy's root, relative below the caller's own cgroup; empty
 * is the container id, relative. With --systemd-cgroup: `slice:prefix:name`
 * is `<expanded slice>/<prefix>-<name>.scope` (a name ending in .slice is
 * used as it is), empty is `system.slice/kapsel-<id>.scope`; runc asks
 * systemd for the unit, kapsel makes the same directories itself.
 * Errors: a systemd path not of three fields, an invalid slice name.
 */
export function innerPathOf(
  cgroupsPath: string | undefined,
  id: string,
  systemd: boolean,
): InnerPath {
  const given = cgroupsPath ?? '';
  if (systemd) {
    const [slice, prefix, name] =
      given === '' ? ['', 'kapsel', id] : (given.split(':') as [string?, string?, string?]);
    if (given !== '' && given.split(':').length !== 3) {
      throw new RuntimeError(
        `expected cgroupsPath to be of format "slice:prefix:name" for systemd cgroups, got ${JSON.stringify(given)} instead`,
      );
    }
    const unit = (name ?? '').endsWith('.slice')
      ? (name ?? '')
      : `${prefix ?? ''}-${name ?? ''}.scope`;
    return {
      path: join(expandSlice(slice === '' || slice === undefined ? 'system.slice' : slice), unit),
      absolute: true,
    };
  }
  if (given === '') return { path: id, absolute: false };
  if (isAbsolute(given)) return { path: cleanPath(given), absolute: true };
  return { path: posix.relative('/', cleanPath(`/${given}`)), absolute: false };
}

/** Go's filepath.Clean for an absolute path: no "..", no doubled or trailing "/". */
function cleanPath(p: string): string {
  const c = posix.normalize(p);
  return c.length > 1 && c.endsWith('/') ? c.slice(0, -1) : c;
}

/**
 * systemd's slice naming (runc cgroups/systemd ExpandSlice):
 * `a-b.slice` is `/a.slice/a-b.slice`, `-.slice` the root.
 */
export function expandSlice(slice: string): string {
  const suffix = '.slice';
  const bad = (): RuntimeError => new RuntimeError(`invalid slice name: ${slice}`);
  if (slice.length <= suffix.length - 1 || !slice.endsWith(suffix) || slice.includes('/')) {
    throw bad();
  }
  const base = slice.slice(0, -suffix.length);
  if (base === '-') return '/';
  let path = '';
  let prefix = '';
  for (const part of base.split('-')) {
    if (part === '') throw bad();
    path += `/${prefix}${part}${suffix}`;
    prefix += `${part}-`;
  }
  return path;
}

/**
 * The directory of `inner` in hierarchy `h`: from its root when absolute,
 * else below the cgroup `own` shows for it (runc GetOwnCgroupPath), both
 * seen through the mount (its root may be a sub-cgroup, as in a container).
 */
export function dirIn(h: Hierarchy, inner: InnerPath, own: OwnCgroups): string {
  const key = h.version === 2 ? '' : h.controllers.join(',');
  const base = inner.absolute ? '/' : (own.get(key) ?? findOwn(h, own));
  const full = posix.join(base, inner.path);
  const rel = posix.relative(h.mountRoot, full);
  if (rel.startsWith('..')) {
    throw new RuntimeError(
      `cgroup ${full} is outside the mount ${h.mountPoint} (root ${h.mountRoot})`,
    );
  }
  return join(h.mountPoint, rel);
}

/** /proc/PID/cgroup may list co-mounted controllers in another order. */
function findOwn(h: Hierarchy, own: OwnCgroups): string {
  for (const [key, path] of own) {
    const names = key.split(',');
    if (names.length === h.controllers.length && h.controllers.every((c) => names.includes(c))) {
      return path;
    }
  }
  return '/';
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}
