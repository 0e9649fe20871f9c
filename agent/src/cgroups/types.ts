import type { LinuxResources } from '../../../oci/resources.js';

/**
 * One cgroup v2 controller (youki's libcgroups/v2 shape): applies its part of
 * linux.resources to a cgroup directory and leaves the rest alone, so the
 * same call serves create and update (fields left out stay as they are).
 */
export interface Controller {
  readonly name: string;
  apply(resources: LinuxResources, dir: string): Promise<void>;
}
