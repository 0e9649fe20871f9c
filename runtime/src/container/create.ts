import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { agentCall, type AgentClient } from '../sandbox/agent-client.js';
import type { Spec } from '../../../oci/spec.js';
import { syncNetwork } from '../sandbox/network/client.js';
import {
  checkNetnsPath,
  enterNetnsArgs,
  hostNetnsOf,
  joinNetnsOf,
} from '../sandbox/network/netns.js';
import { logBootTimeline } from '../sandbox/boot-timeline.js';
import {
  createHostCgroup,
  hostCgroupPlan,
  joinHostCgroup,
  removeHostCgroup,
} from '../sandbox/host-cgroup/apply.js';
import { sandboxPid, startSandbox, stopSandbox } from '../sandbox/process.js';
import { settings } from '../config/settings.js';
import { sharedFsOf } from '../sandbox/vm/config.js';
import { sandboxSize, sizingOf } from '../sandbox/sizing.js';
import { vmDirLayout } from '../sandbox/vm-dir.js';
import { startShim } from '../shim/spawn.js';
import { RuntimeError } from '../sys/errors.js';
import { writePidFile } from '../sys/pid-file.js';
import { killQuietly, processStart } from '../sys/pids.js';
import { loadBundle } from './bundle.js';
import { prepareGuestContainer, releaseHostMounts } from './guest-spec.js';
import { prepareHostSpec } from './host-spec.js';
import { runHooks } from './hooks.js';
import { agentOf } from './open.js';
import { loopbackNameserver } from '../sandbox/network/resolv-conf.js';
import { placementOf } from './pod.js';
import { StateStore, toOciState, type ContainerRecord, type PidRef } from './state.js';

export interface CreateOptions {
  root: string;
  id: string;
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
  /** Foreground `run`: this process stands for the container, no shim. */
  inline: boolean;
  /** --systemd-cgroup: cgroupsPath is `slice:prefix:name`. */
  systemdCgroup?: boolean;
  debug: boolean;
  log: Logger;
  /**
   * Checked once the container's state exists and before anything boots,
   * where runc's run sets up its stdio (utils_linux.go setupIO); a throw is
   * undone like any failure of create.
   */
  beforeBoot?: (spec: Spec) => void;
}

/**
 * `create`: boots the container's sandbox (or joins its pod's), makes its
 * rootfs and binds visible to the guest, builds it there, starts its shim and
 * runs the create-time hooks. On any failure everything made so far goes.
 */
export async function createContainer(o: CreateOptions): Promise<ContainerRecord> {
  const bundle = await loadBundle(o.bundle);
  // Refused before anything is made, no VM booted for a spec the guest would refuse.
  const spec = await prepareHostSpec(bundle.spec, bundle.dir, bundle.rootfs, o.log);
  const store = new StateStore(o.root);
  const placement = placementOf(o.id, bundle.spec.annotations);
  const vmDir = store.vmDirOf(placement.sandboxId);
  // Refused before anything is made: a VM cannot be on the host's network.
  const netns = placement.ownsSandbox ? hostNetnsOf(bundle.spec) : undefined;
  if (netns?.kind === 'path') await checkNetnsPath(netns.path, dirname(vmDir));
  const record: ContainerRecord = {
    id: o.id,
    bundle: bundle.dir,
    rootfs: bundle.rootfs,
    created: new Date().toISOString(),
    pid: 0,
    status: 'creating',
    annotations: bundle.spec.annotations ?? {},
    sandboxId: placement.sandboxId,
    vmDir,
    mounts: [],
    creator: pidRef(process.pid),
  };
  await store.create(record);
  const layout = vmDirLayout(vmDir);
  let agent: AgentClient | undefined;
  let inGuest = false;
  try {
    o.beforeBoot?.(bundle.spec);
    if (placement.ownsSandbox) {
      // Sized for the container's limits, as Kata sizes its VMs.
      const size = sandboxSize([bundle.spec], sizingOf(settings().hypervisor, cpus().length));
      // Made before the sandbox process, which joins it before QEMU starts.
      record.hostCgroup = await createHostCgroup(bundle.spec, o.id, o.systemdCgroup ?? false);
      // The sandbox process reads the same settings (it inherits our environment).
      record.sharedFs = settings().hypervisor.shared_fs;
      await store.save(record);
      await startSandbox(
        o.root,
        placement.sandboxId,
        vmDir,
        o.debug,
        size,
        enterNetnsArgs(netns ?? { kind: 'new' }),
        hostCgroupPlan(record.hostCgroup, bundle.spec),
      );
    } else {
      // A pod's processes share the sandbox's cgroup (Kata sandbox_cgroup_only).
      const owner = await store.load(placement.sandboxId).catch(() => undefined);
      if (owner?.hostCgroup !== undefined) record.hostCgroup = owner.hostCgroup;
      if (owner?.sharedFs !== undefined) record.sharedFs = owner.sharedFs;
    }
    const sandbox = await sandboxPid(vmDir);
    if (sandbox === undefined) {
      throw new RuntimeError(`sandbox ${placement.sandboxId} is not running`);
    }
    record.sandbox = pidRef(sandbox);
    await store.save(record);
    agent = agentOf(record);
    const guest = await prepareGuestContainer({
      id: o.id,
      spec: placement.ownsSandbox ? withGuestNetns(spec) : spec,
      rootfs: bundle.rootfs,
      sharedDir: layout.shared,
      sharedFs: sharedFsOf(record),
    });
    record.mounts = guest.mounts;
    await store.save(record);
    await agentCall(
      agent.createContainer({
        containerId: o.id,
        ociSpecJson: JSON.stringify(guest.spec),
        storages: guest.storages,
        sandboxContainerId: placement.ownsSandbox ? '' : placement.sandboxId,
      }),
    );
    inGuest = true;
    if (placement.ownsSandbox) await logBootTimeline(vmDir, 'containerCreated', o.log);
    record.pid = o.inline
      ? process.pid
      : await startShim({
          socket: layout.shims,
          id: o.id,
          execId: '',
          ...(o.consoleSocket === undefined ? {} : { consoleSocket: o.consoleSocket }),
          logFile: `${store.dirOf(o.id)}/shim.log`,
          // Hooks get this pid; Docker's libnetwork configures its namespace.
          enter: joinNetnsOf(sandbox),
        });
    if (!o.inline && record.hostCgroup !== undefined) {
      await joinHostCgroup(record.hostCgroup, record.pid);
    }
    const start = processStart(record.pid);
    if (start !== undefined) record.pidStart = start;
    record.status = 'created';
    delete record.creator;
    await store.save(record);
    // A foreground run's pid is ours, in the host's network namespace: its
    // hooks get the sandbox process's, which is in the container's.
    const hookState = toOciState(o.inline ? { ...record, pid: sandbox } : record);
    for (const kind of ['prestart', 'createRuntime', 'createContainer'] as const) {
      await runHooks(bundle.spec.hooks, kind, hookState);
    }
    // After the prestart hooks: Docker configures the namespace in one.
    if (placement.ownsSandbox) {
      // Docker's embedded DNS (nameserver 127.0.0.11) lives in the host
      // namespace; the sandbox relays the guest's queries to it.
      const dns = await loopbackNameserver(bundle.spec, bundle.dir);
      await syncNetwork(layout.socket, o.id, dns);
    }
    // runc writes the pid file atomically: a reader never sees it half-written.
    if (o.pidFile !== undefined) await writePidFile(o.pidFile, record.pid);
    agent.close();
    return record;
  } catch (err) {
    // `delete --force` of a container still "creating" took its record
    // (runc's create is too quick to have that window): say so, not ENOENT.
    const deleted = !existsSync(store.dirOf(o.id));
    if (inGuest && agent !== undefined) {
      await agent.removeContainer(o.id).catch(() => undefined);
    }
    if (record.pid !== 0 && record.pid !== process.pid) killQuietly(record.pid);
    await releaseHostMounts(record.mounts).catch((e: unknown) => {
      o.log.warn({ err: e }, 'releasing host mounts failed');
    });
    if (placement.ownsSandbox && agent !== undefined) {
      await agent.destroySandbox().catch(() => undefined);
    }
    agent?.close();
    if (placement.ownsSandbox) await stopSandbox(vmDir, o.log);
    if (placement.ownsSandbox && record.hostCgroup !== undefined) {
      await removeHostCgroup(record.hostCgroup).catch((e: unknown) => {
        o.log.warn({ err: e }, 'removing the host cgroup failed');
      });
    }
    await store.remove(o.id);
    if (deleted) {
      throw new RuntimeError(`container ${o.id} was deleted while it was being created`, 1, {
        cause: err,
      });
    }
    throw err;
  }
}

function pidRef(pid: number): PidRef {
  const start = processStart(pid);
  return start === undefined ? { pid } : { pid, start };
}

/**
 * The sandbox container's spec as the guest takes it: a network namespace
 * path names the host's namespace, which the sandbox process mirrors into a
 * new guest namespace, so the guest makes a new one.
 */
export function withGuestNetns(spec: Spec): Spec {
  const namespaces = spec.linux?.namespaces;
  if (namespaces === undefined) return spec;
  return {
    ...spec,
    linux: {
      ...spec.linux,
      namespaces: namespaces.map((n) => (n.type === 'network' ? { type: 'network' } : n)),
    },
  };
}
