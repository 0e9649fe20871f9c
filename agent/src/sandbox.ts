import type { Logger } from 'pino';
import type { Spec } from '../../oci/spec.js';
import type { StatsContainerResponse, Storage } from '../../proto/generated/agent.js';
import { OomWatcher } from './cgroups/events.js';
import type { CgroupManager } from './cgroups/manager.js';
import { Container } from './container.js';
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from './errors.js';
import { EventHub } from './events.js';
import type { Native, ProcessExit } from './native/types.js';
import { parseSpec, toSpawnRequest } from './spec.js';
import { mountStorages, unmountAll } from './storage.js';

/** runc's rule for container ids. */
const ID_PATTERN = /^[\w+\-.]+$/;

/** The containers of this guest, and everything done to them. */
export class Sandbox {
  private readonly containers = new Map<string, Container>();
  /** Ids being created, so a second create of the same id is refused early. */
  private readonly creating = new Set<string>();

  /** OOM kills and other guest events, for GetEvents. */
  readonly events = new EventHub();
  private readonly oom = new OomWatcher((e) => {
    this.log.warn({ container: e.containerId }, 'container OOM kill');
    this.events.publish(e);
  });

  constructor(
    private readonly native: Native,
    private readonly log: Logger,
    /** Absent where the agent has no cgroup v2 hierarchy (e.g. standalone on a v1 host). */
    private readonly cgroups?: CgroupManager,
  ) {}

  async createContainer(id: string, specJson: string, storages: readonly Storage[]): Promise<void> {
    checkId(id);
    if (this.containers.has(id) || this.creating.has(id)) {
      throw alreadyExists(`container ${id} already exists`);
    }
    this.creating.add(id);
    try {
      const spec = parseSpec(specJson);
      const request = toSpawnRequest(spec);
      // Validated and made before anything else, so that bad resources
      // leave nothing behind; the init is then born in it.
      const cgroup = await this.createCgroup(id, spec);
      if (cgroup !== undefined) request.cgroup = cgroup;
      try {
        const mounted = await mountStorages(this.native, storages);
        try {
          const init = await this.native.spawn(request);
          this.containers.set(id, new Container(id, init, mounted, this.log, cgroup));
          if (cgroup !== undefined) await this.oom.add(id, cgroup);
          this.log.info({ container: id, pid: init.pid, cgroup }, 'container created');
        } catch (err) {
          await unmountAll(this.native, mounted);
          throw err;
        }
      } catch (err) {
        if (cgroup !== undefined) await this.cgroups?.remove(cgroup);
        throw err;
      }
    } finally {
      this.creating.delete(id);
    }
  }

  get(id: string): Container {
    const c = this.containers.get(id);
    if (c === undefined) throw notFound(`container ${id} does not exist`);
    return c;
  }

  async startContainer(id: string): Promise<void> {
    await this.get(id).start();
    this.log.info({ container: id }, 'container started');
  }

  waitProcess(id: string, execId: string): Promise<ProcessExit> {
    checkExecId(execId);
    return this.get(id).wait();
  }

  signalProcess(id: string, execId: string, signal: number): void {
    checkExecId(execId);
    if (!Number.isInteger(signal) || signal < 0 || signal > 64) {
      throw invalidArgument(`signal: ${signal} is not a signal number`);
    }
    this.get(id).signal(signal);
  }

  async removeContainer(id: string): Promise<void> {
    const c = this.get(id);
    this.containers.delete(id);
    await c.kill();
    if (c.cgroupDir !== undefined) {
      await this.oom.remove(id);
      await this.cgroups?.remove(c.cgroupDir);
    }
    await unmountAll(this.native, c.storageMounts);
    this.log.info({ container: id }, 'container removed');
  }

  /** PauseContainer: freezes the container's cgroup and waits until it is frozen. */
  async pauseContainer(id: string): Promise<void> {
    const c = this.get(id);
    if (c.status !== 'running')
      throw failedPrecondition(`container ${id} is ${c.status}, not running`);
    await this.requireCgroups(id).pause(this.cgroupOf(c));
    c.paused = true;
    this.log.info({ container: id }, 'container paused');
  }

  /** ResumeContainer: thaws a paused container. */
  async resumeContainer(id: string): Promise<void> {
    const c = this.get(id);
    if (c.status !== 'paused')
      throw failedPrecondition(`container ${id} is ${c.status}, not paused`);
    await this.requireCgroups(id).resume(this.cgroupOf(c));
    c.paused = false;
    this.log.info({ container: id }, 'container resumed');
  }

  /** UpdateContainer: validates resources_json as linux.resources, then applies what it sets. */
  async updateContainer(id: string, resourcesJson: string): Promise<void> {
    const c = this.get(id);
    if (c.status === 'stopped') throw failedPrecondition(`container ${id} is stopped`);
    const cgroups = this.requireCgroups(id);
    let value: unknown;
    try {
      value = JSON.parse(resourcesJson);
    } catch (err) {
      throw invalidArgument(`resources_json: ${(err as Error).message}`);
    }
    const resources = await cgroups.validate(value);
    await cgroups.apply(this.cgroupOf(c), resources);
    this.log.info({ container: id, resources }, 'container resources updated');
  }

  statsContainer(id: string): Promise<StatsContainerResponse> {
    const c = this.get(id);
    return this.requireCgroups(id).stats(this.cgroupOf(c));
  }

  private async createCgroup(id: string, spec: Spec): Promise<string | undefined> {
    const resources = spec.linux?.resources;
    if (this.cgroups === undefined) {
      if (resources !== undefined && Object.keys(resources).length > 0) {
        throw failedPrecondition(
          'linux.resources: this agent has no cgroup v2 hierarchy to apply them in',
        );
      }
      return undefined;
    }
    const valid = await this.cgroups.validate(resources);
    const dir = this.cgroups.dirFor(id, spec.linux?.cgroupsPath);
    await this.cgroups.create(dir, valid, spec.linux?.devices ?? []);
    return dir;
  }

  private requireCgroups(id: string): CgroupManager {
    if (this.cgroups === undefined) {
      throw failedPrecondition(`container ${id}: this agent has no cgroup v2 hierarchy`);
    }
    return this.cgroups;
  }

  private cgroupOf(c: Container): string {
    if (c.cgroupDir === undefined) throw failedPrecondition(`container ${c.id} has no cgroup`);
    return c.cgroupDir;
  }

  async destroy(): Promise<void> {
    for (const id of [...this.containers.keys()]) {
      await this.removeContainer(id).catch((err: unknown) => {
        this.log.error({ err, container: id }, 'remove during sandbox destroy failed');
      });
    }
  }
}

function checkId(id: string): void {
  if (!ID_PATTERN.test(id)) throw invalidArgument(`container_id: invalid id ${JSON.stringify(id)}`);
}

function checkExecId(execId: string): void {
  if (execId !== '') throw invalidArgument('exec_id: exec processes are not supported yet');
}
