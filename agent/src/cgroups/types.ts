import type { LinuxResources } from '../../../oci/resources.js';

/**
 * One cgroup v2 controller (youki's libcgroups/v2 shape): applies its part of
 * linux.resources to a cgroup directory and leaves the rest alone, so the
 * same call serves create and update (fields left out stay as they are).
 * Its file also owns the check of its part (validate<Part>, dispatched by
 * validate.ts) and, where it has counters, its stats (dispatched by
 * stats.ts).
 */
export interface Controller {
  readonly name: string;
  apply(resources: LinuxResources, dir: string): Promise<void>;
}

/** What the guest has, for checking cpuset requests against. */
export interface HostLimits {
  /** Online CPUs the container cgroups may use (the parent's cpuset.cpus.effective). */
  cpus: readonly number[];
  /** Memory nodes likewise. */
  mems: readonly number[];
}
