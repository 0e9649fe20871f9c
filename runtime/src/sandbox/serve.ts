import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Server as NetServer } from 'node:net';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  CreateContainerRequest,
  RemoveContainerRequest,
  WaitProcessRequest,
} from '../../../proto/generated/agent.js';
import { SandboxServiceService } from '../../../proto/generated/sandbox.js';
import { StateStore } from '../container/state.js';
import { writeFileAtomic } from '../sys/atomic-file.js';
import { tellCreator } from '../sys/detached.js';
import { messageOf } from '../sys/errors.js';
import { IdleMemory } from '../../../oci/process/idle-memory.js';
import { hostMalloc } from '../sys/host-native.js';
import { isAlive, processStart } from '../sys/pids.js';
import type { AgentClient } from './agent-client.js';
import { SandboxHost } from './host.js';
import { serveShims } from './shim-server.js';
import { SandboxNetwork } from './network/sandbox-network.js';
import { sandboxService } from './network/service.js';
import { SandboxDns } from './network/dns-relay.js';
import { proxyService, upstreamClient } from './proxy.js';
import type { VmSize } from './sizing.js';
import { Supervisor } from './supervisor.js';
import { cleanupVmDir, vmDirLayout, vmDirOf, type VmDirLayout } from './vm-dir.js';
import { faultReason, guestFault } from './vm/guest-fault.js';

/** The VM directory's logs a faulted sandbox copies into its containers' state directories. */
const KEPT_LOGS = ['console.log', 'monitor.log'] as const;

/** How often the sandbox looks whether the `kapsel create` that started it still runs. */
const CREATOR_POLL_MS = 500;

/** A sandbox nobody created a container in gives up after this long. */
const IDLE_EXIT_MS = 60_000;

/**
 * `kapsel __monitor SANDBOX` (the verb keeps its first name, "monitor"; the
 * guest's per-container monitor is native/lib/monitor.c, another thing):
 * the sandbox process, the one long-lived host process of a VM. It owns
 * QEMU, virtiofsd and the single agent connection, and serves the agent API
 * to the CLI on <vm dir>/monitor.sock, and relays for the per-process shims
 * on <vm dir>/shim.sock (shim-server.ts). It ends with the last
 * container removed, on DestroySandbox, or by a fault: a process it
 * supervises dies (supervisor.ts), or its creator dies before the container
 * is committed. Then every container it held is recorded as stopped with the
 * reason, and the VM's logs are kept in their state directories.
 */
export async function serveSandbox(
  root: string,
  sandboxId: string,
  log: Logger,
  size: VmSize,
): Promise<number> {
  // First: it caps malloc's arenas, which must come before the boot's
  // threads (libuv's pool, koffi's) each make their own.
  const idleMemory = new IdleMemory(hostMalloc, log);
  const store = new StateStore(root);
  const paths = vmDirLayout(vmDirOf(root, sandboxId));
  const containers = new Set<string>();
  let host: SandboxHost | undefined;
  let network: SandboxNetwork | undefined;
  let dns: SandboxDns | undefined;
  let server: Server | undefined;
  let shims: NetServer | undefined;
  let finish: (reason: string) => void = () => undefined;
  const finished = new Promise<string>((resolve) => (finish = resolve));
  // Set when the sandbox ends by a fault (a process died, its creator
  // vanished), not by its containers' removal.
  let fault: string | undefined;
  const cause = { qemuDied: false };
  // Cut the boot short when a fault comes before the sandbox serves.
  const booting = new AbortController();
  const failed = (reason: string, who = ''): void => {
    if (fault === undefined) cause.qemuDied = who === 'qemu';
    fault ??= reason;
    booting.abort(new Error(reason));
    finish(reason);
  };
  const supervisor = new Supervisor(paths.pids, failed);
  // A polite stop (an admin's kill(1), a host shutting down) ends the
  // sandbox as a fault that names it: Node's default for SIGTERM is to die
  // at once, which recorded no reason, kept no logs and left the VM
  // directory and its mounts to `delete`.
  const politeStop = (signal: NodeJS.Signals): void => {
    log.warn({ signal }, 'sandbox process asked to stop');
    failed(`its sandbox process (pid ${process.pid}) was stopped by ${signal}`);
  };
  process.on('SIGTERM', politeStop);
  process.on('SIGINT', politeStop);
  const creator = watchCreator(store, sandboxId, failed);
  let stopReason: string | undefined;
  let stopping = false;
  let oomWatch: (() => void) | undefined;
  try {
    host = await SandboxHost.boot(paths.dir, size, log, {
      signal: booting.signal,
      adopt: (name, child, rank) => {
        supervisor.adopt(name, child, rank);
      },
    });
    const { sandbox } = host;
    const timeline = sandbox.vm.timeline;
    const saveTimeline = (): void => {
      // Atomic: the CLI reads it while we may be writing it again.
      writeFileAtomic(paths.timeline, JSON.stringify(timeline.report())).catch((err: unknown) => {
        log.debug({ err }, 'writing the boot timeline failed');
      });
    };
    saveTimeline();
    const agentOfSandbox = sandbox.agent;
    const upstream = upstreamClient(sandbox.agent.channel());
    const { definition, implementation } = proxyService(upstream, {
      onDone(method, request, err) {
        idleMemory.callDone();
        if (err !== null) return;
        if (method === 'createContainer' || method === 'startContainer') {
          const mark = method === 'createContainer' ? 'containerCreated' : 'containerStarted';
          if (!timeline.has(mark)) {
            timeline.mark(mark);
            log.info({ timeline: timeline.report() }, `boot timeline: ${mark}`);
            saveTimeline();
          }
        }
        if (method === 'createContainer') {
          containers.add(CreateContainerRequest.decode(request).containerId);
        } else if (method === 'removeContainer') {
          containers.delete(RemoveContainerRequest.decode(request).containerId);
          if (containers.size === 0) finish('its last container was removed');
        } else if (method === 'destroySandbox') {
          finish('the sandbox was destroyed');
        }
      },
      onAbandoned(method, request) {
        // Calls cut by our own shutdown are not orphans.
        if (method !== 'waitProcess' || stopping) return;
        void killOrphan(agentOfSandbox, store, WaitProcessRequest.decode(request), log);
      },
    });
    network = new SandboxNetwork(sandbox.vm.qmp, sandbox.agent, log, (name, child) => {
      supervisor.adopt(name, child);
    });
    server = new Server();
    server.addService(definition, implementation);
    dns = new SandboxDns(paths.dns, sandbox.agent, log);
    server.addService(SandboxServiceService, sandboxService(network, dns, log));
    const srv = server;
    await new Promise<void>((resolve, reject) => {
      srv.bindAsync(`unix://${paths.socket}`, ServerCredentials.createInsecure(), (err) => {
        if (err) reject(err);
        else resolve();
      });
    });
    shims = await serveShims(paths.shims, {
      root,
      agent: sandbox.agent,
      log,
      onOrphan(containerId, execId) {
        // Shims cut by our own shutdown are not orphans.
        if (!stopping) void killOrphan(agentOfSandbox, store, { containerId, execId }, log);
      },
    });
    const idle = setTimeout(() => {
      if (containers.size === 0) finish('no container was created in it');
    }, IDLE_EXIT_MS);
    const guestConsole = sandbox.vm.console;
    oomWatch = watchOom(sandbox.agent, store, log, () => guestFault(guestConsole.tail()));
    tellCreator('ok');
    log.info(
      { sandboxId, qemuPid: sandbox.vm.pid, pids: supervisor.pids() },
      'sandbox monitor serving',
    );
    const reason = await finished;
    stopping = true;
    supervisor.stopping();
    clearTimeout(idle);
    log.info({ reason }, 'sandbox monitor stopping');
    if (fault !== undefined) {
      stopReason = await faultReason(fault, cause.qemuDied, sandbox.vm.console, paths.console);
      log.error({ reason: stopReason }, 'sandbox stopped by a fault');
      // Copied now, so the file the reason names exists once `state` shows
      // it: stopping QEMU can take seconds after a fault (quit, then
      // SIGKILL). Copied again at the end, with the VM's last lines.
      await keepLogs(paths, [...containers, sandboxId], store);
      for (const id of new Set([...containers, sandboxId])) {
        const logs = join(store.dirOf(id), KEPT_LOGS[0]);
        await store.update(id, (r) => {
          r.status = 'stopped';
          r.stopReason = `${stopReason ?? fault}; the VM's logs are kept in ${logs} and monitor.log`;
        });
      }
    }
    server.forceShutdown();
    return 0;
  } catch (err) {
    log.error({ err }, 'sandbox monitor failed');
    tellCreator(messageOf(err));
    return 1;
  } finally {
    clearInterval(creator);
    oomWatch?.();
    supervisor.stopping();
    server?.forceShutdown();
    shims?.close();
    dns?.close();
    const net = network;
    const kept = stopReason === undefined ? undefined : [...containers, sandboxId];
    const beforeCleanup = async (): Promise<void> => {
      await net?.release().catch((err: unknown) => {
        log.warn({ err }, 'removing the taps failed');
      });
      if (kept !== undefined) await keepLogs(paths, kept, store);
    };
    if (host !== undefined) await host.release(beforeCleanup, fault === undefined);
    else {
      await beforeCleanup();
      await cleanupVmDir(paths.dir, log);
    }
  }
}

/**
 * Until the sandbox's own container leaves "creating", watches the `kapsel
 * create` that started this process (our parent): if it dies first (killed
 * while the VM boots, or after the agent made the container), nobody will
 * commit or undo the container, so the sandbox ends with that reason.
 */
function watchCreator(
  store: StateStore,
  sandboxId: string,
  failed: (reason: string) => void,
): NodeJS.Timeout {
  const pid = process.ppid;
  const start = processStart(pid);
  const timer: NodeJS.Timeout = setInterval(() => {
    void store
      .load(sandboxId)
      .then((r) => r.status)
      .catch(() => undefined)
      .then((status) => {
        if (status !== undefined && status !== 'creating') {
          clearInterval(timer);
        } else if (!isAlive(pid, start)) {
          clearInterval(timer);
          failed(`its creator (kapsel create, pid ${pid}) died before the container was created`);
        }
      });
  }, CREATOR_POLL_MS);
  timer.unref();
  return timer;
}

/**
 * Copies the console and monitor logs of a sandbox that died into each of
 * its containers' state directories, which `delete` removes: the VM
 * directory goes with the sandbox, the post-mortem stays.
 */
async function keepLogs(paths: VmDirLayout, ids: string[], store: StateStore): Promise<void> {
  for (const id of new Set(ids)) {
    for (const [name, from] of [
      [KEPT_LOGS[0], paths.console],
      [KEPT_LOGS[1], paths.log],
    ] as const) {
      await copyFile(from, join(store.dirOf(id), name)).catch(() => undefined);
    }
  }
}

/**
 * A shim that vanished, or a WaitProcess caller that did (a foreground run
 * or exec), was the host process standing for that guest process: with it
 * gone nobody holds the process's stdio or can report its end, and `state`
 * already says stopped (runc's pid is dead), so the guest process is killed
 * to match, its container's every process for an init (as runc's init dying
 * takes the pid namespace with it).
 */
async function killOrphan(
  agent: AgentClient,
  store: StateStore,
  w: WaitProcessRequest,
  log: Logger,
): Promise<void> {
  const init = w.execId === '';
  log.warn(
    { containerId: w.containerId, execId: w.execId },
    'the waiter of a process went away; killing it',
  );
  await agent.signalProcess(w.containerId, 9, w.execId, init, 5000).catch((err: unknown) => {
    log.debug({ err }, 'killing the orphaned process failed');
  });
  if (init) {
    await store.update(w.containerId, (r) => {
      if (r.status === 'stopped') return;
      r.status = 'stopped';
      r.stopReason = `its shim (pid ${r.pid}) died; the container's processes were killed`;
    });
  }
}

/**
 * Records a guest OOM kill in a container (the agent's "oom" event: its
 * cgroup's memory.events oom_kill rose, whichever OOM killer acted, the
 * cgroup's or the whole guest's) as the reason it stops, if it does.
 * Returns the function that stops watching.
 */
function watchOom(
  agent: AgentClient,
  store: StateStore,
  log: Logger,
  fromConsole: () => string | undefined,
): () => void {
  const sub = agent.events();
  void (async () => {
    for await (const e of sub.events) {
      if (e.type !== 'oom') continue;
      log.warn(
        { containerId: e.containerId },
        'the guest OOM killer killed a process of a container',
      );
      // The kernel's own line names the process it killed.
      const said = fromConsole();
      await store.update(e.containerId, (r) => {
        r.stopReason ??= `out of memory in the container${said === undefined ? '' : ` (${said})`}`;
      });
    }
  })().catch((err: unknown) => {
    log.debug({ err }, 'the event stream ended');
  });
  return sub.cancel;
}
