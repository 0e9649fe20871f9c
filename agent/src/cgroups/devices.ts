import { closeSync } from 'node:fs';
import type { Device } from '../../../oci/spec.js';
import type { DeviceCgroupRule, LinuxResources } from '../../../oci/resources.js';
import type { Native } from '../native/types.js';
import { deviceFilterProgram, type DeviceRule } from './device-filter.js';
import type { Controller } from './types.js';

const rule = (type: 'c' | 'b', major: number, minor: number, access = 'rwm'): DeviceRule => ({
  allow: true,
  type,
  major,
  minor,
  access,
});

/**
 * What every container may use whatever its spec says, appended after the
 * spec's rules: runc's specconv.AllowedDevices (mknod of anything, the
 * standard /dev nodes, ptys and tun).
 */
export const DEFAULT_ALLOWED: readonly DeviceRule[] = [
  rule('c', -1, -1, 'm'),
  rule('b', -1, -1, 'm'),
  rule('c', 1, 3), // /dev/null
  rule('c', 1, 8), // /dev/random
  rule('c', 1, 7), // /dev/full
  rule('c', 5, 0), // /dev/tty
  rule('c', 1, 5), // /dev/zero
  rule('c', 1, 9), // /dev/urandom
  rule('c', 136, -1), // /dev/pts/*
  rule('c', 5, 2), // /dev/ptmx
  rule('c', 10, 200), // /dev/net/tun
];

/** An OCI rule (validated) as a filter rule. */
export function toDeviceRule(r: DeviceCgroupRule): DeviceRule {
  return {
    allow: r.allow,
    type: (r.type ?? 'a') as DeviceRule['type'],
    major: r.major ?? -1,
    minor: r.minor ?? -1,
    access: r.access ?? 'rwm',
  };
}

/**
 * The full rule list, as runc builds it: the spec's resources.devices, then
 * the defaults, then the nodes linux.devices creates (runc allows those rwm).
 */
export function deviceRules(
  resources: readonly DeviceCgroupRule[],
  specDevices: readonly Device[],
): DeviceRule[] {
  return [
    ...resources.map(toDeviceRule),
    ...DEFAULT_ALLOWED,
    ...specDevices
      .filter((d) => (d.type === 'c' || d.type === 'b' || d.type === 'u') && d.major !== undefined)
      .map((d) => rule(d.type === 'b' ? 'b' : 'c', d.major ?? -1, d.minor ?? -1)),
  ];
}

/**
 * Devices on cgroup v2: an eBPF program per cgroup (there is no
 * devices.allow file). The program fd is kept per directory so an update can
 * swap the program and removal can close it.
 */
export class DevicesController implements Controller {
  readonly name = 'devices';
  private readonly programs = new Map<string, number>();
  private readonly specDevices = new Map<string, readonly Device[]>();

  constructor(
    private readonly native: Pick<Native, 'attachDeviceFilter'>,
    /** How program fds are closed (unit tests with the fake native pass a recorder). */
    private readonly closeFd: (fd: number) => void = closeSync,
  ) {}

  /** Sets the linux.devices of a cgroup's container (before the first apply). */
  setSpecDevices(dir: string, devices: readonly Device[]): void {
    this.specDevices.set(dir, devices);
  }

  /**
   * Attaches the filter; on create always (no rules means only the defaults
   * pass, as with runc), on update only when resources.devices is given.
   */
  apply(resources: LinuxResources, dir: string): Promise<void> {
    const current = this.programs.get(dir);
    if (current !== undefined && resources.devices === undefined) return Promise.resolve();
    const program = deviceFilterProgram(
      deviceRules(resources.devices ?? [], this.specDevices.get(dir) ?? []),
    );
    try {
      this.programs.set(dir, this.native.attachDeviceFilter(dir, program, current));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return Promise.resolve();
  }

  /** Closes the program fd; the kernel detaches it when the cgroup goes. */
  forget(dir: string): void {
    const fd = this.programs.get(dir);
    this.programs.delete(dir);
    this.specDevices.delete(dir);
    if (fd !== undefined) this.closeFd(fd);
  }
}
