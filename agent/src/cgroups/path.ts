import { invalidArgument } from '../errors.js';

/** The subtree of the cgroup root that holds every container's cgroup. */
export const KAPSEL_SUBTREE = 'kapsel';

const SEGMENT = /^[\w.+@-]+$/;

/**
 * The container's cgroup, relative to the kapsel subtree. linux.cgroupsPath
 * is honoured only as a name inside that subtree: "/docker/ID" becomes
 * kapsel/docker/ID, systemd's "slice:prefix:name" becomes kapsel/prefix-name
 * (the unit systemd would make, without its slice), and nothing may climb
 * out with "..".
 */
export function containerCgroupName(id: string, cgroupsPath: string | undefined): string {
  if (cgroupsPath === undefined || cgroupsPath === '') return id;
  const field = 'linux.cgroupsPath';
  if (!cgroupsPath.includes('/') && cgroupsPath.split(':').length === 3) {
    const [, prefix = '', name = ''] = cgroupsPath.split(':');
    const unit = prefix === '' ? name : `${prefix}-${name}`;
    if (!SEGMENT.test(unit) || unit === '.' || unit === '..') {
      throw invalidArgument(`${field}: ${JSON.stringify(cgroupsPath)} is not a usable cgroup name`);
    }
    return unit;
  }
  const segments = cgroupsPath.split('/').filter((s) => s !== '');
  if (segments.length === 0) {
    throw invalidArgument(`${field}: ${JSON.stringify(cgroupsPath)} names no cgroup`);
  }
  for (const s of segments) {
    if (s === '.' || s === '..' || !SEGMENT.test(s)) {
      throw invalidArgument(
        `${field}: segment ${JSON.stringify(s)} of ${JSON.stringify(cgroupsPath)} is not allowed`,
      );
    }
  }
  return segments.join('/');
}
