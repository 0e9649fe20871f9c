import { cpus, release, totalmem } from 'node:os';
import type { Readable } from 'node:stream';
import {
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  CheckResponse_ServingStatus,
  type AgentServiceServer,
  type Empty,
  type ReadStreamRequest,
  type ReadStreamResponse,
} from '../../proto/generated/agent.js';
import { toGrpcStatus } from './errors.js';
import { GuestNetwork } from './network/network.js';
import { checkInterface, checkNeighbors, checkRoutes } from './network/validate.js';
import type { Sandbox } from './sandbox.js';
import { DnsRelay } from './network/dns-relay.js';
import { AGENT_VERSION } from './version.js';

/**
 * The RPC surface: each handler validates, calls the sandbox and maps the
 * error; the work is in sandbox.ts.
 */
export function agentService(
  sandbox: Sandbox,
  log: Logger,
  onDestroyed: () => void,
): AgentServiceServer & UntypedServiceImplementation {
  const dnsRelay = new DnsRelay(log);
  const empty: Empty = {};
  const network = new GuestNetwork(log);
  return {
    check: unary(log, 'Check', () =>
      Promise.resolve({ status: CheckResponse_ServingStatus.SERVING }),
    ),
    getGuestDetails: unary(log, 'GetGuestDetails', () =>
      Promise.resolve({
        agentVersion: AGENT_VERSION,
        kernelRelease: release(),
        nodeVersion: process.version,
        memTotalBytes: totalmem(),
        cpus: cpus().length,
      }),
    ),
    createContainer: unary(log, 'CreateContainer', async (r) => {
      await sandbox.createContainer(r.containerId, r.ociSpecJson, r.storages, r.sandboxContainerId);
      return empty;
    }),
    startContainer: unary(log, 'StartContainer', async (r) => {
      await sandbox.startContainer(r.containerId);
      return empty;
    }),
    removeContainer: unary(log, 'RemoveContainer', async (r) => {
      await sandbox.removeContainer(r.containerId);
      return empty;
    }),
    waitProcess: unary(log, 'WaitProcess', (r) => sandbox.waitProcess(r.containerId, r.execId)),
    signalProcess: unary(log, 'SignalProcess', (r) => {
      sandbox.signalProcess(r.containerId, r.execId, r.signal, r.all);
      return Promise.resolve(empty);
    }),
    execProcess: unary(log, 'ExecProcess', async (r) => {
      await sandbox.execProcess(r.containerId, r.execId, r.processJson);
      return empty;
    }),
    listProcesses: unary(log, 'ListProcesses', (r) =>
      Promise.resolve({ pids: sandbox.listProcesses(r.containerId) }),
    ),
    ttyWinResize: unary(log, 'TtyWinResize', (r) => {
      sandbox.ttyWinResize(r.containerId, r.execId, r.rows, r.columns);
      return Promise.resolve(empty);
    }),
    readStdout: stream(log, 'ReadStdout', sandbox, 'stdout'),
    readStderr: stream(log, 'ReadStderr', sandbox, 'stderr'),
    writeStdin: unary(log, 'WriteStdin', async (r) => {
      const stdin = sandbox.get(r.containerId).stdin(r.execId);
      await new Promise<void>((resolve, reject) => {
        stdin.write(r.data, (err) => {
          if (err) reject(err);
          else resolve();
        });
      });
      return { len: r.data.length };
    }),
    closeStdin: unary(log, 'CloseStdin', (r) => {
      sandbox.get(r.containerId).closeStdin(r.execId);
      return Promise.resolve(empty);
    }),
    setupDnsRelay: unary(log, 'SetupDNSRelay', async (r) => {
      await dnsRelay.setup(sandbox.get(r.containerId), r.listenAddress);
      return empty;
    }),
    updateInterface: unary(log, 'UpdateInterface', (r) => {
      const iface = checkInterface(r.interface);
      return network.updateInterface(sandbox.get(r.containerId), iface);
    }),
    updateRoutes: unary(log, 'UpdateRoutes', (r) => {
      checkRoutes(r.routes);
      return network.updateRoutes(sandbox.get(r.containerId), r.routes);
    }),
    addArpNeighbors: unary(log, 'AddARPNeighbors', async (r) => {
      checkNeighbors(r.neighbors);
      await network.addArpNeighbors(sandbox.get(r.containerId), r.neighbors);
      return empty;
    }),
    listInterfaces: unary(log, 'ListInterfaces', (r) =>
      network.listInterfaces(sandbox.get(r.containerId)),
    ),
    listRoutes: unary(log, 'ListRoutes', (r) => network.listRoutes(sandbox.get(r.containerId))),
    pauseContainer: unary(log, 'PauseContainer', async (r) => {
      await sandbox.pauseContainer(r.containerId);
      return empty;
    }),
    resumeContainer: unary(log, 'ResumeContainer', async (r) => {
      await sandbox.resumeContainer(r.containerId);
      return empty;
    }),
    updateContainer: unary(log, 'UpdateContainer', async (r) => {
      await sandbox.updateContainer(r.containerId, r.resourcesJson);
      return empty;
    }),
    statsContainer: unary(log, 'StatsContainer', (r) => sandbox.statsContainer(r.containerId)),
    getEvents: (call) => {
      log.debug({ rpc: 'GetEvents' }, 'request');
      // Until the host cancels; backpressure is not needed at OOM rates.
      const unsubscribe = sandbox.events.subscribe((e) => {
        call.write(e);
      });
      call.on('cancelled', unsubscribe);
      call.on('close', unsubscribe);
    },
    destroySandbox: unary(log, 'DestroySandbox', async () => {
      await sandbox.destroy();
      // Answer first; PID 1 powers the VM off once the agent has gone.
      setImmediate(onDestroyed);
      return empty;
    }),
  };
}

function unary<Req, Res>(
  log: Logger,
  name: string,
  handler: (request: Req) => Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    log.debug({ rpc: name }, 'request');
    // A handler that throws before its first await must still map to a status.
    Promise.resolve(call.request)
      .then(handler)
      .then(
        (res) => {
          callback(null, res);
        },
        (err: unknown) => {
          const status = toGrpcStatus(err);
          log.info({ rpc: name, code: status.code, msg: status.details }, 'request failed');
          callback({ code: status.code, details: status.details });
        },
      );
  };
}

function stream(
  log: Logger,
  name: string,
  sandbox: Sandbox,
  which: 'stdout' | 'stderr',
): (call: ServerWritableStream<ReadStreamRequest, ReadStreamResponse>) => void {
  return (call) => {
    log.debug({ rpc: name, exec: call.request.execId }, 'request');
    let source: Readable;
    let release: () => void;
    try {
      const { containerId, execId } = call.request;
      const container = sandbox.get(containerId);
      source = container.claimOutput(which, execId);
      release = () => {
        container.releaseOutput(source, execId);
      };
    } catch (err) {
      const status = toGrpcStatus(err);
      log.info({ rpc: name, code: status.code, msg: status.details }, 'request failed');
      call.destroy(Object.assign(new Error(status.details), status));
      return;
    }
    const onData = (data: Buffer): void => {
      if (!call.write({ data })) {
        source.pause();
        call.once('drain', () => source.resume());
      }
    };
    const detach = (): void => {
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onEnd);
      source.pause();
      release();
    };
    const onEnd = (): void => {
      detach();
      call.end();
    };
    // An empty output that hit EOF before anyone asked has already ended
    // (and auto-destroyed): its 'end' will not come again.
    if (source.readableEnded || (source.destroyed && source.readableLength === 0)) {
      release();
      call.end();
      return;
    }
    call.on('cancelled', detach);
    source.on('data', onData);
    source.once('end', onEnd);
    source.once('error', onEnd);
    source.resume();
  };
}
