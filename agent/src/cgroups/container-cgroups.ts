import type { LinuxResources } from '../../../oci/resources.js';
import type { Spec } from '../../../oci/spec.js';
import { failedPrecondition } from '../errors.js';
import type { StatsContainerResponse } from '../../../proto/generated/agent.js';

/** What the verbs on a living container (pause, update, stats) need of a cgroup v2 hierarchy. */
export interface CgroupHierarchy {
  validate(resources: unknown): Promise<LinuxResources>;
  apply(dir: string, resources: LinuxResources): Promise<void>;
  pause(dir: string): Promise<void>;
  resume(dir: string): Promise<void>;
  stats(dir: string): Promise<StatsContainerResponse>;
}

/**
 * What the sandbox asks of cgroups for its containers. CgroupManager
 * answers where the guest has a cgroup v2 hierarchy, DisabledCgroups where
 * it has none (a standalone agent on a v1 host): the sandbox never asks
 * which one it has.
 */
export interface ContainerCgroups {
  /** A spec's linux.resources, checked; undefined when containers get no cgroup. */
  checkSpec(resources: LinuxResources | undefined): Promise<LinuxResources | undefined>;
  /** Makes a container's cgroup with checked resources; undefined when it gets none. */
  createFor(id: string, spec: Spec, valid: LinuxResources | undefined): Promise<string | undefined>;
  remove(dir: string): Promise<void>;
  /** The hierarchy, for verbs that need one; refuses naming container `id` where there is none. */
  require(id: string): CgroupHierarchy;
}

/** No cgroup v2 hierarchy: containers run without cgroups, and limits are refused. */
export class DisabledCgroups implements ContainerCgroups {
  checkSpec(resources: LinuxResources | undefined): Promise<undefined> {
    if (resources !== undefined && Object.keys(resources).length > 0) {
      return Promise.reject(
        failedPrecondition(
          'linux.resources: this agent has no cgroup v2 hierarchy to apply them in',
        ),
      );
    }
    return Promise.resolve(undefined);
  }

  createFor(): Promise<undefined> {
    return Promise.resolve(undefined);
  }

  remove(): Promise<void> {
    return Promise.resolve();
  }

  require(id: string): never {
    throw failedPrecondition(`container ${id}: this agent has no cgroup v2 hierarchy`);
  }
}
