import { cpus } from 'node:os';
import { dirname } from 'node:path';
import type { ServiceError } from '@grpc/grpc-js';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Spec } from '../../oci/spec.js';
import { AgentClient } from './agent/client.js';
import { loadBundle } from './bundle.js';
import { RuntimeError } from './errors.js';
import { prepareGuestContainer, releaseHostMounts } from './guest-spec.js';
import { runHooks } from './hooks.js';
import { cleanupVmDir } from './monitor/monitor.js';
import { monitorPaths } from './monitor/paths.js';
import { syncNetwork } from './network/client.js';
import { loopbackNameserver } from './network/resolv-conf.js';
import { checkNetnsPath, enterNetnsArgs, hostNetnsOf, joinNetnsOf } from './network/netns.js';
import { startMonitor } from './monitor/spawn.js';
import { sandboxSize, sizingFromEnv } from './sizing.js';
import { placementOf } from './pod.js';
import { startShim } from './shim/spawn.js';
import { isAlive, processStart, StateStore, toOciState, type ContainerRecord } from './state.js';

export interface CreateOptions {
  root: string;
  id: string;
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
  /** Foreground `run`: this process stands for the container, no shim. */
  inline: boolean;
  debug: boolean;
  log: Logger;
}

/** The sandbox monitor's client for a container. */
export function monitorOf(r: ContainerRecord): AgentClient {
  return AgentClient.forSocket(monitorPaths(r.vmDir).socket);
}

/**
 * `create`: boots the container's sandbox (or joins its pod's), makes its
 * rootfs and binds visible to the guest, builds it there, starts its shim and
 * runs the create-time hooks. On any failure everything made so far goes.
 */
export async function createContainer(o: CreateOptions): Promise<ContainerRecord> {
  const bundle = await loadBundle(o.bundle);
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
  };
  await store.create(record);
  const paths = monitorPaths(vmDir);
  let agent: AgentClient | undefined;
  let inGuest = false;
  try {
    if (placement.ownsSandbox) {
      // Sized for the container's limits, as Kata sizes its VMs.
      const size = sandboxSize([bundle.spec], sizingFromEnv(process.env, cpus().length));
      record.monitorPid = await startMonitor(
        o.root,
        placement.sandboxId,
        vmDir,
        o.debug,
        size,
        enterNetnsArgs(netns ?? { kind: 'new' }),
      );
      await store.save(record);
    }
    const monitorPid = await readPid(paths.pidFile);
    if (monitorPid === undefined || !isAlive(monitorPid)) {
      throw new RuntimeError(`sandbox ${placement.sandboxId} is not running`);
    }
    agent = AgentClient.forSocket(paths.socket);
    const guest = await prepareGuestContainer({
      id: o.id,
      spec: placement.ownsSandbox ? withGuestNetns(bundle.spec) : bundle.spec,
      rootfs: bundle.rootfs,
      sharedDir: paths.shared,
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
    record.pid = o.inline
      ? process.pid
      : await startShim({
          root: o.root,
          socket: paths.socket,
          id: o.id,
          execId: '',
          ...(o.consoleSocket === undefined ? {} : { consoleSocket: o.consoleSocket }),
          logFile: `${store.dirOf(o.id)}/shim.log`,
          // Hooks get this pid; Docker's libnetwork configures its namespace.
          enter: joinNetnsOf(monitorPid),
        });
    const start = processStart(record.pid);
    if (start !== undefined) record.pidStart = start;
    record.status = 'created';
    await store.save(record);
    for (const kind of ['prestart', 'createRuntime', 'createContainer'] as const) {
      await runHooks(bundle.spec.hooks, kind, toOciState(record));
    }
    // After the prestart hooks: Docker configures the namespace in one.
    if (placement.ownsSandbox) {
      // Docker's embedded DNS (nameserver 127.0.0.11) lives in the host
      // namespace; the sandbox relays the guest's queries to it.
      const dns = await loopbackNameserver(bundle.spec, bundle.dir);
      await syncNetwork(paths.socket, o.id, dns);
    }
    if (o.pidFile !== undefined) await writePidFile(o.pidFile, record.pid);
    agent.close();
    return record;
  } catch (err) {
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
    await store.remove(o.id);
    throw err;
  }
}

/**
 * The sandbox container's spec as the guest takes it: a network namespace
 * path names the host's namespace, which the sandbox process mirrors into a
 * new guest namespace, so the guest makes a new one.
 */
function withGuestNetns(spec: Spec): Spec {
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

/**
 * Removes a container for good: from the guest (if its VM still runs), its
 * shim, its host mounts and its state; the sandbox goes with its last
 * container. Poststop hooks run last, as runc runs them on destroy.
 */
export async function destroyContainer(
  store: StateStore,
  r: ContainerRecord,
  log: Logger,
): Promise<void> {
  const agent = monitorOf(r);
  try {
    await agent.removeContainer(r.id).catch((err: unknown) => {
      log.debug({ err }, 'RemoveContainer failed (the VM may be gone)');
    });
  } finally {
    agent.close();
  }
  if (r.pid !== process.pid && isAlive(r.pid, r.pidStart)) killQuietly(r.pid);
  await releaseHostMounts(r.mounts);
  await store.remove(r.id);
  const others = [];
  for (const id of await store.ids()) {
    const o = await store.load(id).catch(() => undefined);
    if (o?.sandboxId === r.sandboxId) others.push(id);
  }
  if (others.length === 0) await stopSandbox(r.vmDir, log);
  const spec = await readSpec(r.bundle);
  await runHooks(spec?.hooks, 'poststop', { ...toOciState(r), status: 'stopped', pid: 0 });
}

/** Waits for a sandbox's monitor to finish (it does with its last container), then cleans up. */
async function stopSandbox(vmDir: string, log: Logger): Promise<void> {
  const paths = monitorPaths(vmDir);
  const pid = await readPid(paths.pidFile);
  for (let i = 0; i < 150 && isAlive(pid); i++) await sleep(100);
  if (pid !== undefined && isAlive(pid)) {
    // Its QEMU and virtiofsd die with it (PR_SET_PDEATHSIG).
    log.warn({ pid }, 'sandbox monitor did not stop; killing it');
    killQuietly(pid);
    for (let i = 0; i < 50 && isAlive(pid); i++) await sleep(100);
  }
  await cleanupVmDir(paths.dir, paths.shared, log);
}

export async function readSpec(bundle: string): Promise<Spec | undefined> {
  try {
    return JSON.parse(await readFile(`${bundle}/config.json`, 'utf8')) as Spec;
  } catch {
    return undefined;
  }
}

async function readPid(file: string): Promise<number | undefined> {
  try {
    const n = Number((await readFile(file, 'utf8')).trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** runc writes the pid file atomically: a reader never sees it half-written. */
async function writePidFile(file: string, pid: number): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, String(pid));
  await rename(tmp, file);
}

export function killQuietly(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Agent refusals become runtime errors carrying the agent's own words. */
export async function agentCall<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    const details = (err as Partial<ServiceError>).details;
    if (typeof details === 'string' && details !== '') {
      throw new RuntimeError(details, 1, { cause: err });
    }
    throw err;
  }
}
