import { copyFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Spec } from '../../../oci/spec.js';
import type { CreateTaskRequest } from '../../../proto/generated/github.com/containerd/containerd/runtime/v2/task/shim.js';
import {
  TaskCreate,
  TaskDelete,
  TaskExecAdded,
  TaskExecStarted,
  TaskExit,
  TaskOOM,
  TaskPaused,
  TaskResumed,
  TaskStart,
} from '../../../proto/generated/github.com/containerd/containerd/api/events/task.js';
import { loadBundle } from '../container/bundle.js';
import { withGuestNetns } from '../container/create.js';
import { prepareGuestContainer, releaseHostMounts } from '../container/guest-spec.js';
import { sharedFsOf } from '../sandbox/vm/config.js';
import { placementOf } from '../container/pod.js';
import type { HostMount } from '../container/state.js';
import { agentCall, type AgentClient } from '../sandbox/agent-client.js';
import {
  createHostCgroup,
  hostCgroupPlan,
  moveToCgroupDirs,
  ownCgroupDirs,
  removeHostCgroup,
  type HostCgroup,
  type HostCgroupPlan,
} from '../sandbox/host-cgroup/apply.js';
import { unmountTree } from '../sandbox/host-mounts.js';
import { SandboxHost } from '../sandbox/host.js';
import { hostNetnsOf, type HostNetns } from '../sandbox/network/netns.js';
import { SandboxNetwork } from '../sandbox/network/sandbox-network.js';
import { settings } from '../config/settings.js';
import { sandboxSize, sizingOf } from '../sandbox/sizing.js';
import { Supervisor } from '../sandbox/supervisor.js';
import { vmDirLayout } from '../sandbox/vm-dir.js';
import { faultReason } from '../sandbox/vm/guest-fault.js';
import { RuntimeError } from '../sys/errors.js';
import { Code, TtrpcError } from '../ttrpc/status.js';
import { TaskProcess, type TaskIo } from './process.js';
import type { EventPublisher } from './publisher.js';
import { mountRootfs } from './rootfs.js';

/** One container of the pod, as the shim holds it. */
interface PodContainer {
  id: string;
  bundle: string;
  spec: Spec;
  init: TaskProcess;
  execs: Map<string, TaskProcess>;
  /** The OCI process (JSON) of execs not started yet: Exec registers, Start runs (the agent runs at once). */
  pendingExecs: Map<string, string>;
  paused: boolean;
  /** <bundle>/rootfs when the shim mounted it from CreateTaskRequest.rootfs. */
  rootfsMount: string | undefined;
  hostMounts: HostMount[];
}

/**
 * The pod behind one containerd shim: its VM (booted with the first
 * container, the pod's sandbox, through the same SandboxHost the runc path's
 * sandbox process uses) and every container and process in it. The task
 * service (task-service.ts) is a thin surface over this; the lifecycle rules
 * follow containerd's runc shim (runtime/v2/runc/task/service.go).
 */
export class ShimPod {
  #host: SandboxHost | undefined;
  #sandboxId: string | undefined;
  #sandboxBundle: string | undefined;
  #supervisor: Supervisor | undefined;
  /** The pod's host cgroup, which this shim joined, and where it came from. */
  #hostCgroup: { cgroup: HostCgroup; origin: string[] } | undefined;
  #stopEvents: (() => void) | undefined;
  #network: SandboxNetwork | undefined;
  /** The last releaseVm's run, which the next one waits for. */
  #releasing: Promise<void> = Promise.resolve();
  readonly containers = new Map<string, PodContainer>();

  constructor(
    private readonly vmDir: string,
    private readonly events: EventPublisher,
    private readonly log: Logger,
  ) {}

  /** The VM's pid (QEMU), reported as every task's pid; 0 before the VM boots. */
  get pid(): number {
    return this.#host?.sandbox.vm.pid ?? 0;
  }

  get agent(): AgentClient {
    if (this.#host === undefined)
      throw new TtrpcError(Code.FailedPrecondition, 'the pod has no VM');
    return this.#host.sandbox.agent;
  }

  container(id: string): PodContainer {
    const c = this.containers.get(id);
    if (c === undefined) throw new TtrpcError(Code.NotFound, `container ${id}: not found`);
    return c;
  }

  process(id: string, execId: string): TaskProcess {
    const c = this.container(id);
    if (execId === '') return c.init;
    const p = c.execs.get(execId);
    if (p === undefined) throw new TtrpcError(Code.NotFound, `exec ${execId} of ${id}: not found`);
    return p;
  }

  /**
   * Create: mounts the rootfs, boots the VM for the pod's first container
   * (sized for its limits, as the runc path sizes it), shares the rootfs and
   * binds into the guest and has the agent build the container there.
   */
  async create(req: CreateTaskRequest): Promise<number> {
    if (this.containers.has(req.id)) {
      throw new TtrpcError(Code.AlreadyExists, `container ${req.id}: already exists`);
    }
    if (req.checkpoint !== '') {
      throw new TtrpcError(
        Code.Unimplemented,
        'restore from a checkpoint: not supported by kapsel',
      );
    }
    const rootfsMount = await mountRootfs(req.bundle, req.rootfs);
    let bootedHere = false;
    let hostMounts: HostMount[] = [];
    let inGuest = false;
    try {
      const bundle = await loadBundle(req.bundle).catch((err: unknown) => {
        throw new TtrpcError(Code.InvalidArgument, (err as Error).message);
      });
      const placement = placementOf(req.id, bundle.spec.annotations);
      // A VM cannot be on the host's network; a namespace path is mirrored.
      const netns = placement.ownsSandbox ? hostNetnsOfSpec(bundle.spec) : undefined;
      if (placement.ownsSandbox) {
        if (this.#host !== undefined) {
          throw new TtrpcError(
            Code.FailedPrecondition,
            `container ${req.id}: this shim serves pod ${this.#sandboxId ?? '?'}`,
          );
        }
        const size = sandboxSize([bundle.spec], sizingOf(settings().hypervisor, cpus().length));
        bootedHere = true;
        this.#sandboxId = req.id;
        this.#sandboxBundle = req.bundle;
        const hostCgroup = await this.#makeHostCgroup(bundle.spec, req.id);
        // Any of the VM's host processes ending cuts the boot short, or
        // later takes the pod down (the runc path's serve.ts does the same).
        const booting = new AbortController();
        const supervisor = new Supervisor(vmDirLayout(this.vmDir).pids, (reason, who) => {
          booting.abort(new Error(reason));
          void this.#fault(reason, who);
        });
        this.#supervisor = supervisor;
        this.#host = await SandboxHost.boot(this.vmDir, size, this.log, {
          signal: booting.signal,
          adopt: (name, child, rank) => {
            supervisor.adopt(name, child, rank);
          },
          hostCgroup,
        });
        this.#watchGuest(this.#host);
      } else if (this.#sandboxId !== placement.sandboxId) {
        throw new TtrpcError(
          Code.FailedPrecondition,
          `container ${req.id}: its pod ${placement.sandboxId} is not this shim's`,
        );
      }
      const host = this.#host;
      if (host === undefined) throw new TtrpcError(Code.FailedPrecondition, 'the pod has no VM');
      const guest = await prepareGuestContainer({
        id: req.id,
        spec: placement.ownsSandbox ? withGuestNetns(bundle.spec) : bundle.spec,
        rootfs: bundle.rootfs,
        sharedDir: host.paths.shared,
        sharedFs: sharedFsOf(host.sandbox.vm.config),
      });
      hostMounts = guest.mounts;
      await agentCall(
        host.sandbox.agent.createContainer({
          containerId: req.id,
          ociSpecJson: JSON.stringify(guest.spec),
          storages: guest.storages,
          sandboxContainerId: placement.ownsSandbox ? '' : placement.sandboxId,
        }),
      ).catch(rethrowAgent);
      inGuest = true;
      if (netns?.kind === 'path') {
        // start ran this shim inside that namespace: mirror it into the guest.
        const supervisor = this.#supervisor;
        this.#network = new SandboxNetwork(
          host.sandbox.vm.qmp,
          host.sandbox.agent,
          this.log,
          (name, child) => {
            supervisor?.adopt(name, child);
          },
        );
        await this.#network.sync(req.id);
        await this.#network.watch(req.id);
      }
      const io = {
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
        terminal: req.terminal,
      };
      const init = new TaskProcess(req.id, '', io, this.pid, host.sandbox.agent, this.log);
      init.attach();
      this.containers.set(req.id, {
        id: req.id,
        bundle: req.bundle,
        spec: bundle.spec,
        init,
        execs: new Map(),
        pendingExecs: new Map(),
        paused: false,
        rootfsMount,
        hostMounts,
      });
      this.events.publish('/tasks/create', 'containerd.events.TaskCreate', TaskCreate, {
        containerId: req.id,
        bundle: req.bundle,
        rootfs: req.rootfs,
        io,
        checkpoint: '',
        pid: this.pid,
      });
      return this.pid;
    } catch (err) {
      if (inGuest) await this.#host?.sandbox.agent.removeContainer(req.id).catch(() => undefined);
      await releaseHostMounts(hostMounts).catch(() => undefined);
      if (bootedHere) {
        await this.releaseVm();
        this.#sandboxId = undefined;
        this.#sandboxBundle = undefined;
      }
      if (rootfsMount !== undefined) await unmountTree(rootfsMount).catch(() => undefined);
      throw err;
    }
  }

  async start(id: string, execId: string): Promise<number> {
    const c = this.container(id);
    if (execId === '') {
      if (c.init.status !== 'created') {
        throw new TtrpcError(
          Code.FailedPrecondition,
          `container ${id} is ${c.init.status}, not created`,
        );
      }
      await agentCall(this.agent.startContainer(id)).catch(rethrowAgent);
      c.init.watch((p) => {
        this.#exited(p);
      });
      this.events.publish('/tasks/start', 'containerd.events.TaskStart', TaskStart, {
        containerId: id,
        pid: this.pid,
      });
      return this.pid;
    }
    const p = this.process(id, execId);
    const processJson = c.pendingExecs.get(execId);
    if (processJson === undefined) {
      throw new TtrpcError(Code.FailedPrecondition, `exec ${execId} of ${id} was started already`);
    }
    c.pendingExecs.delete(execId);
    await agentCall(this.agent.execProcess(id, execId, processJson)).catch(rethrowAgent);
    p.attach();
    p.watch((q) => {
      this.#exited(q);
    });
    this.events.publish(
      '/tasks/exec-started',
      'containerd.events.TaskExecStarted',
      TaskExecStarted,
      {
        containerId: id,
        execId,
        pid: this.pid,
      },
    );
    return this.pid;
  }

  /** Exec: registers the process; Start runs it. spec is the OCI process as JSON. */
  exec(id: string, execId: string, io: TaskIo, processJson: string): void {
    const c = this.container(id);
    if (c.execs.has(execId) || c.pendingExecs.has(execId)) {
      throw new TtrpcError(Code.AlreadyExists, `exec ${execId} of ${id}: already exists`);
    }
    if (c.init.status === 'stopped') {
      throw new TtrpcError(Code.FailedPrecondition, `container ${id} is stopped`);
    }
    c.execs.set(execId, new TaskProcess(id, execId, io, this.pid, this.agent, this.log));
    c.pendingExecs.set(execId, processJson);
    this.events.publish('/tasks/exec-added', 'containerd.events.TaskExecAdded', TaskExecAdded, {
      containerId: id,
      execId,
    });
  }

  /**
   * Delete: an exec is forgotten; a container is removed from the guest, its
   * host mounts and rootfs released. The last container of the pod takes the
   * VM with it. The sandbox container deleted while others remain (its
   * process died first, or a client deleted it first) stays in the guest,
   * where it holds the pod's namespaces, and the VM stays up for the others,
   * as Kata's shim does (containerd-shim-v2 delete.go deleteContainer); a
   * container deleted after the VM is gone only releases its host side.
   */
  async delete(id: string, execId: string): Promise<TaskProcess> {
    const c = this.container(id);
    if (execId !== '') {
      const p = this.process(id, execId);
      if (c.pendingExecs.delete(execId)) p.discard();
      if (p.status === 'running') {
        throw new TtrpcError(Code.FailedPrecondition, `exec ${execId} of ${id} is running`);
      }
      c.execs.delete(execId);
      return p;
    }
    if (c.init.status === 'running') {
      throw new TtrpcError(Code.FailedPrecondition, `container ${id} is running; kill it first`);
    }
    const othersRemain = [...this.containers.keys()].some((k) => k !== id);
    this.log.info({ id, othersRemain }, 'deleting the container');
    if (this.#host !== undefined && !(id === this.#sandboxId && othersRemain)) {
      await this.#host.sandbox.agent.removeContainer(id).catch((err: unknown) => {
        this.log.warn({ err, id }, 'removing the container from the guest failed');
      });
    }
    c.init.discard();
    await releaseHostMounts(c.hostMounts).catch((err: unknown) => {
      this.log.warn({ err, id }, 'releasing host mounts failed');
    });
    if (c.rootfsMount !== undefined) await unmountTree(c.rootfsMount);
    this.containers.delete(id);
    this.events.publish('/tasks/delete', 'containerd.events.TaskDelete', TaskDelete, {
      containerId: id,
      pid: this.pid,
      exitStatus: c.init.exitStatus,
      exitedAt: c.init.exitedAt,
      id,
    });
    if (this.containers.size === 0) await this.releaseVm();
    this.log.info({ id }, 'container deleted');
    return c.init;
  }

  async pause(id: string): Promise<void> {
    const c = this.container(id);
    await agentCall(this.agent.pauseContainer(id)).catch(rethrowAgent);
    c.paused = true;
    this.events.publish('/tasks/paused', 'containerd.events.TaskPaused', TaskPaused, {
      containerId: id,
    });
  }

  async resume(id: string): Promise<void> {
    const c = this.container(id);
    await agentCall(this.agent.resumeContainer(id)).catch(rethrowAgent);
    c.paused = false;
    this.events.publish('/tasks/resumed', 'containerd.events.TaskResumed', TaskResumed, {
      containerId: id,
    });
  }

  /**
   * Kill: runc's shim answers NotFound for a process that already ended,
   * with or without `all` (runc/process/init_state.go stoppedState.Kill);
   * containerd's WithProcessKill, which CRI's task delete uses, takes only
   * NotFound as done.
   */
  async kill(id: string, execId: string, signal: number, all: boolean): Promise<void> {
    const p = this.process(id, execId);
    if (p.status === 'stopped' || (all && this.#host === undefined)) {
      throw new TtrpcError(Code.NotFound, `process ${execId || id}: process already finished`);
    }
    await agentCall(this.agent.signalProcess(id, signal, execId, all)).catch(rethrowAgent);
  }

  /**
   * Takes the VM down (QEMU, virtiofsd, the shared directory) and the pod's
   * host cgroup; idempotent. After a fault (`graceful` false) the guest is
   * not asked to shut down. Calls run one after another: a Delete that
   * comes while a fault's release is still removing the host cgroup (it
   * waits for the VM's processes to leave it) returns once that is done,
   * as runc's delete returns with the container's cgroup gone.
   */
  releaseVm(graceful = true): Promise<void> {
    const release = this.#releasing.then(() => this.#release(graceful));
    this.#releasing = release.catch(() => undefined);
    return release;
  }

  async #release(graceful: boolean): Promise<void> {
    const host = this.#host;
    this.#host = undefined;
    this.#supervisor?.stopping();
    this.#stopEvents?.();
    this.#stopEvents = undefined;
    const network = this.#network;
    this.#network = undefined;
    if (host !== undefined) {
      await host.release(network === undefined ? undefined : () => network.release(), graceful);
    }
    const hostCgroup = this.#hostCgroup;
    this.#hostCgroup = undefined;
    if (hostCgroup !== undefined) {
      // Out of it first: a cgroup that holds this shim cannot be removed.
      await moveToCgroupDirs(hostCgroup.origin, process.pid)
        .then(() => removeHostCgroup(hostCgroup.cgroup))
        .catch((err: unknown) => {
          this.log.warn({ err }, 'removing the host cgroup failed');
        });
    }
  }

  /**
   * The pod's host cgroup at the sandbox's linux.cgroupsPath, made where
   * runc makes a container's (Kata's sandbox_cgroup_only: the shim, QEMU
   * and virtiofsd in it). containerd's CRI gives a systemd cgroup as
   * `slice:prefix:name` only when its runc options say SystemdCgroup, so
   * the form of the path tells which manager is meant.
   */
  async #makeHostCgroup(spec: Spec, id: string): Promise<HostCgroupPlan> {
    const path = spec.linux?.cgroupsPath;
    const systemd = path !== undefined && /^[^/:]*:[^:]*:[^:]*$/.test(path);
    const origin = ownCgroupDirs();
    const cgroup = await createHostCgroup(spec, id, systemd);
    this.#hostCgroup = { cgroup, origin };
    return hostCgroupPlan(cgroup, spec);
  }

  /**
   * A host process of the VM ended by itself (supervisor.ts): the reason is
   * logged with what the guest's console says (a panic, its OOM killer),
   * the console log is kept beside the shim's log in the sandbox's bundle
   * (containerd removes it with the bundle), and the VM goes, so every task
   * ends with 255 as under the runc path.
   */
  async #fault(fault: string, who: string): Promise<void> {
    const host = this.#host;
    // The Supervisor reports one death; during the boot there is no VM yet
    // (the boot's abort ends it).
    if (host === undefined) return;
    const reason = await faultReason(
      fault,
      who === 'qemu',
      host.sandbox.vm.console,
      host.paths.console,
    );
    const kept =
      this.#sandboxBundle === undefined ? undefined : join(this.#sandboxBundle, 'console.log');
    if (kept !== undefined) {
      await copyFile(host.paths.console, kept).catch((err: unknown) => {
        this.log.warn({ err }, 'keeping the console log failed');
      });
    }
    this.log.error({ reason, consoleLog: kept }, 'the pod VM stopped by a fault');
    await this.releaseVm(false);
  }

  #exited(p: TaskProcess): void {
    this.events.publish('/tasks/exit', 'containerd.events.TaskExit', TaskExit, {
      containerId: p.containerId,
      id: p.execId === '' ? p.containerId : p.execId,
      pid: p.pid,
      exitStatus: p.exitStatus,
      exitedAt: p.exitedAt,
    });
  }

  /** OOM kills the guest's cgroups see become /tasks/oom; the VM's death ends every process. */
  #watchGuest(host: SandboxHost): void {
    const { events, cancel } = host.sandbox.agent.events();
    this.#stopEvents = cancel;
    void (async () => {
      try {
        for await (const e of events) {
          if (e.type === 'oom' && this.containers.has(e.containerId)) {
            this.events.publish('/tasks/oom', 'containerd.events.TaskOOM', TaskOOM, {
              containerId: e.containerId,
            });
          }
        }
      } catch (err) {
        this.log.debug({ err }, 'guest event stream ended');
      }
    })();
  }
}

function hostNetnsOfSpec(spec: Spec): HostNetns {
  try {
    return hostNetnsOf(spec);
  } catch (err) {
    throw new TtrpcError(Code.InvalidArgument, (err as Error).message);
  }
}

/** An agent refusal as a ttrpc status, keeping its gRPC code (the same numbering). */
function rethrowAgent(err: unknown): never {
  const e = RuntimeError.fromGrpc(err);
  throw new TtrpcError(e.grpcCode ?? Code.Unknown, e.message, { cause: err });
}
