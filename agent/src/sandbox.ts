import { restoreGuest, type RestoreResult } from './restore.js';
import type { Logger } from 'pino';
import type { LinuxResources } from '../../oci/resources.js';
import type { Seccomp, Spec } from '../../oci/spec.js';
import type { StatsContainerResponse, Storage } from '../../proto/generated/agent.js';
import { OomWatcher } from './cgroups/events.js';
import { DisabledCgroups, type ContainerCgroups } from './cgroups/container-cgroups.js';
import { Container } from './container.js';
import {
  alreadyExists,
  asJsonRefusal,
  failedPrecondition,
  invalidArgument,
  notFound,
} from './errors.js';
import { EventHub } from './events.js';
import { NativeError, type Native, type ProcessExit } from './native/types.js';
import { containerPids, signalAll } from './processes.js';
import { execContextOf, toExecRequest } from './spec/exec.js';
import { joinsOf } from './spec/linux.js';
import { dropUnusedInodes } from './reclaim.js';
import { parseSpec, toSpawnRequest } from './spec/translate.js';
import { checkContainerId } from './request-checks.js';
import { mountStorages, unmountAll, type MountedStorage } from './storage.js';

/**
 * libkapsel compiles the seccomp profile at create; a syscall name libseccomp
 * knows for no architecture is the spec's fault, like any other bad field,
 * and is named as one.
 */
function specRefusal(err: unknown, seccomp: Seccomp | undefined): unknown {
  if (!(err instanceof NativeError) || err.syscall !== 'seccomp' || err.errno !== 22) return err;
  let field = 'linux.seccomp.syscalls';
  (seccomp?.syscalls ?? []).forEach((s, i) => {
    const j = s.names.indexOf(err.path ?? '');
    if (j >= 0 && field === 'linux.seccomp.syscalls') field = `${field}[${i}].names[${j}]`;
  });
  return invalidArgument(`${field}: ${err.message}`);
}

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
    /** DisabledCgroups where the agent has no cgroup v2 hierarchy (standalone on a v1 host). */
    private readonly cgroups: ContainerCgroups = new DisabledCgroups(),
    /**
     * False when the agent runs standalone on a host (--listen): then
     * RestoreGuest, which sets the clock and feeds the RNG of the kernel it
     * runs on, is refused.
     */
    private readonly inGuest = true,
  ) {}

  async createContainer(
    id: string,
    specJson: string,
    storages: readonly Storage[],
    sandboxContainerId = '',
  ): Promise<void> {
    checkContainerId('container_id', id);
    if (this.containers.has(id) || this.creating.has(id)) {
      throw alreadyExists(`container ${id} already exists`);
    }
    this.creating.add(id);
    try {
      const spec = parseSpec(specJson);
      // Resources are refused before anything is made; the rest of the spec
      // after the storages are mounted, since bind sources live in them.
      const resources = await this.cgroups
        .checkSpec(spec.linux?.resources)
        .catch((err: unknown) => {
          throw asJsonRefusal('oci_spec_json: linux.resources', err);
        });
      const mounted = await mountStorages(this.native, storages);
      try {
        await this.createInMounted(id, spec, resources, mounted, sandboxContainerId);
      } catch (err) {
        await unmountAll(this.native, mounted);
        throw err;
      }
    } finally {
      this.creating.delete(id);
    }
  }

  private async createInMounted(
    id: string,
    spec: Spec,
    resources: LinuxResources | undefined,
    mounted: MountedStorage[],
    sandboxContainerId: string,
  ): Promise<void> {
    let plan: ReturnType<typeof toSpawnRequest>;
    try {
      plan = toSpawnRequest(spec);
    } catch (err) {
      throw asJsonRefusal('oci_spec_json', err);
    }
    const { request, join } = plan;
    if (join.length > 0) {
      // A path in linux.namespaces is the host's; in the guest the pod's
      // namespaces are those of its sandbox container's init.
      if (sandboxContainerId === '') {
        throw invalidArgument(
          'linux.namespaces: an entry with a path needs sandbox_container_id to join from',
        );
      }
      request.joinNamespaces = joinsOf(this.get(sandboxContainerId).pid, join);
    }
    // Made before the init, which is then born in it.
    const cgroup = await this.cgroups.createFor(id, spec, resources);
    if (cgroup !== undefined) {
      request.cgroup = cgroup;
      // A spec without a cgroup namespace means the host's (Docker's
      // cgroupns=host on a v1 host), which does not exist in the guest;
      // without one the container would see the guest's root cgroup and not
      // its own limits. So it always gets one, rooted at its cgroup.
      if (!request.namespaces.includes('cgroup') && !join.some((j) => j === 'cgroup')) {
        request.namespaces = [...request.namespaces, 'cgroup'];
      }
    }
    try {
      let context: ReturnType<typeof execContextOf>;
      try {
        context = execContextOf(request, join, spec.linux);
      } catch (err) {
        throw asJsonRefusal('oci_spec_json', err);
      }
      const init = await this.native.spawn(request).catch((err: unknown) => {
        throw asJsonRefusal('oci_spec_json', specRefusal(err, spec.linux?.seccomp));
      });
      this.containers.set(id, new Container(id, init, mounted, context, this.log));
      if (cgroup !== undefined) await this.oom.add(id, cgroup);
      this.log.info({ container: id, pid: init.pid, cgroup }, 'container created');
    } catch (err) {
      if (cgroup !== undefined) await this.cgroups.remove(cgroup);
      throw err;
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

  /**
   * runc exec: a process in all the container's namespaces (through
   * /proc/<init>/ns) and its cgroup, with its own stdio, addressed by execId.
   */
  async execProcess(id: string, execId: string, processJson: string): Promise<void> {
    const c = this.get(id);
    c.checkExec(execId);
    let request: ReturnType<typeof toExecRequest>;
    try {
      request = toExecRequest(processJson, c.pid, c.execContext);
    } catch (err) {
      throw asJsonRefusal('process_json', err);
    }
    // The container's profile compiled once at create; nothing to refuse here.
    const spawned = await this.native.spawn(request).catch((err: unknown) => {
      throw asJsonRefusal('process_json', err);
    });
    // A second exec with this id may have raced us through the await.
    try {
      c.checkExec(execId);
    } catch (err) {
      spawned.signal(9);
      throw err;
    }
    await c.addExec(execId, spawned);
    this.log.info({ container: id, exec: execId, pid: spawned.pid }, 'exec started');
  }

  waitProcess(id: string, execId: string): Promise<ProcessExit> {
    return this.get(id).wait(execId);
  }

  signalProcess(id: string, execId: string, signal: number, all = false): void {
    if (!Number.isInteger(signal) || signal < 0 || signal > 64) {
      throw invalidArgument(`signal: ${signal} is not a signal number`);
    }
    if (all) {
      signalAll(this.listProcesses(id), signal);
      return;
    }
    this.get(id).signal(execId, signal);
  }

  listProcesses(id: string): number[] {
    const c = this.get(id);
    if (c.status === 'stopped') return [];
    return containerPids({
      initPid: c.pid,
      ownPidNamespace: c.execContext.namespaces.includes('pid'),
      cgroupDir: c.cgroupDir,
      execPids: c.execPids(),
    });
  }

  ttyWinResize(id: string, execId: string, rows: number, cols: number): void {
    if (rows > 0xffff || cols > 0xffff) throw invalidArgument('rows, columns: must be 0..65535');
    this.get(id).resize(execId, rows, cols);
  }

  async removeContainer(id: string): Promise<void> {
    const c = this.get(id);
    // Without a pid namespace of its own, killing the init and the execs
    // would leave their children behind: kill everything the container has
    // first (with one, the kernel kills the namespace with its init).
    if (c.status !== 'stopped' && !c.execContext.namespaces.includes('pid')) {
      signalAll(this.listProcesses(id), 9);
    }
    this.containers.delete(id);
    await c.kill();
    if (c.cgroupDir !== undefined) {
      await this.oom.remove(id);
      await this.cgroups.remove(c.cgroupDir);
    }
    await unmountAll(this.native, c.storageMounts);
    dropUnusedInodes(this.log);
    this.log.info({ container: id }, 'container removed');
  }

  /** PauseContainer: freezes the container's cgroup and waits until it is frozen. */
  async pauseContainer(id: string): Promise<void> {
    const c = this.get(id);
    // runc (libcontainer) pauses created containers too.
    if (c.status !== 'running' && c.status !== 'created')
      throw failedPrecondition(`container ${id} is ${c.status}, not running`);
    await this.cgroups.require(id).pause(this.cgroupOf(c));
    c.paused = true;
    this.log.info({ container: id }, 'container paused');
  }

  /** ResumeContainer: thaws a paused container. */
  async resumeContainer(id: string): Promise<void> {
    const c = this.get(id);
    if (c.status !== 'paused')
      throw failedPrecondition(`container ${id} is ${c.status}, not paused`);
    await this.cgroups.require(id).resume(this.cgroupOf(c));
    c.paused = false;
    this.log.info({ container: id }, 'container resumed');
  }

  /** UpdateContainer: validates resources_json as linux.resources, then applies what it sets. */
  async updateContainer(id: string, resourcesJson: string): Promise<void> {
    const c = this.get(id);
    if (c.status === 'stopped') throw failedPrecondition(`container ${id} is stopped`);
    const cgroups = this.cgroups.require(id);
    let value: unknown;
    try {
      value = JSON.parse(resourcesJson);
    } catch (err) {
      throw invalidArgument(`resources_json: ${(err as Error).message}`);
    }
    const resources = await cgroups.validate(value).catch((err: unknown) => {
      throw asJsonRefusal('resources_json', err);
    });
    await cgroups.apply(this.cgroupOf(c), resources);
    this.log.info({ container: id, resources }, 'container resources updated');
  }

  statsContainer(id: string): Promise<StatsContainerResponse> {
    const c = this.get(id);
    return this.cgroups.require(id).stats(this.cgroupOf(c));
  }

  private cgroupOf(c: Container): string {
    if (c.cgroupDir === undefined) throw failedPrecondition(`container ${c.id} has no cgroup`);
    return c.cgroupDir;
  }

  /** After a restore from a template (restore.ts): fresh entropy, clock, the share device. */
  restoreGuest(entropy: Buffer, realtimeNs: bigint, shareWaitMs: number): Promise<RestoreResult> {
    if (!this.inGuest) {
      return Promise.reject(
        failedPrecondition(
          "restore guest: the agent serves a unix socket on a host, whose clock and RNG are not a restored guest's",
        ),
      );
    }
    return restoreGuest(this.native, entropy, realtimeNs, shareWaitMs);
  }

  async destroy(): Promise<void> {
    for (const id of [...this.containers.keys()]) {
      await this.removeContainer(id).catch((err: unknown) => {
        this.log.error({ err, container: id }, 'remove during sandbox destroy failed');
      });
    }
  }
}
