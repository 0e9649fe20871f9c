import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { CreateContainerRequest, RemoveContainerRequest } from '../../../proto/generated/agent.js';
import { SandboxServiceService } from '../../../proto/generated/sandbox.js';
import { StateStore } from '../container/state.js';
import { writeFileAtomic } from '../sys/atomic-file.js';
import { tellCreator } from '../sys/detached.js';
import { messageOf } from '../sys/errors.js';
import { SandboxHost } from './host.js';
import { SandboxNetwork } from './network/sandbox-network.js';
import { sandboxService } from './network/service.js';
import { SandboxDns } from './network/dns-relay.js';
import { proxyService, upstreamClient } from './proxy.js';
import type { VmSize } from './sizing.js';
import { cleanupVmDir, vmDirLayout, vmDirOf } from './vm-dir.js';

/** A sandbox nobody created a container in gives up after this long. */
const IDLE_EXIT_MS = 60_000;

/**
 * `kapsel __monitor SANDBOX` (the verb keeps its first name, "monitor"; the
 * guest's per-container monitor is native/lib/monitor.c, another thing):
 * the sandbox process, the one long-lived host process of a VM. It owns
 * QEMU, virtiofsd and the single agent connection, and serves the agent API
 * to the CLI and the shims on <vm dir>/monitor.sock. It ends with the last
 * container removed, on DestroySandbox, or when QEMU dies, in which case every
 * container it held is recorded as stopped with the reason.
 */
export async function serveSandbox(
  root: string,
  sandboxId: string,
  log: Logger,
  size: VmSize,
): Promise<number> {
  const store = new StateStore(root);
  const paths = vmDirLayout(vmDirOf(root, sandboxId));
  const containers = new Set<string>();
  let host: SandboxHost | undefined;
  let network: SandboxNetwork | undefined;
  let dns: SandboxDns | undefined;
  let server: Server | undefined;
  let finish: (reason: string) => void = () => undefined;
  const finished = new Promise<string>((resolve) => (finish = resolve));
  let vmDied: string | undefined;
  try {
    host = await SandboxHost.boot(paths.dir, size, log);
    const { sandbox } = host;
    void host.vmExited.then((reason) => {
      vmDied = reason;
      finish(reason);
    });
    const timeline = sandbox.vm.timeline;
    const saveTimeline = (): void => {
      // Atomic: the CLI reads it while we may be writing it again.
      writeFileAtomic(paths.timeline, JSON.stringify(timeline.report())).catch((err: unknown) => {
        log.debug({ err }, 'writing the boot timeline failed');
      });
    };
    saveTimeline();
    const upstream = upstreamClient(sandbox.agent.channel());
    const { definition, implementation } = proxyService(upstream, {
      onDone(method, request, err) {
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
    });
    network = new SandboxNetwork(sandbox.vm.qmp, sandbox.agent, log);
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
    const idle = setTimeout(() => {
      if (containers.size === 0) finish('no container was created in it');
    }, IDLE_EXIT_MS);
    tellCreator('ok');
    log.info({ sandboxId, qemuPid: sandbox.vm.pid }, 'sandbox monitor serving');
    const reason = await finished;
    clearTimeout(idle);
    log.info({ reason }, 'sandbox monitor stopping');
    const died = vmDied;
    if (died !== undefined) {
      for (const id of containers) {
        await store.update(id, (r) => {
          r.status = 'stopped';
          r.stopReason = died;
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
    server?.forceShutdown();
    dns?.close();
    const net = network;
    if (host !== undefined) await host.release(net === undefined ? undefined : () => net.release());
    else await cleanupVmDir(paths.dir, log);
  }
}
