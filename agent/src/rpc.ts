import { cpus, release, totalmem } from 'node:os';
import type { Readable } from 'node:stream';
import {
  status as GrpcStatus,
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
import { toGrpcStatus, type GrpcErrorStatus } from './errors.js';
import { isUndecodable, undecodable } from './decode-guard.js';
import {
  checkAddArpNeighbors,
  checkContainerOnly,
  checkCreateContainer,
  checkExecProcess,
  checkProcessRef,
  checkRestoreGuest,
  checkSetupDnsRelay,
  checkSignalProcess,
  checkTtyWinResize,
  checkUpdateContainer,
  checkUpdateInterface,
  checkUpdateRoutes,
  checkWriteStdin,
  noFields,
} from './request-checks.js';
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
  /** Called when any call has ended, answered or refused (IdleMemory, oci/process/idle-memory.ts). */
  onRequestDone: () => void = () => undefined,
): AgentServiceServer & UntypedServiceImplementation {
  const ctx: Context = { log, done: onRequestDone };
  const dnsRelay = new DnsRelay(log);
  const empty: Empty = {};
  const network = new GuestNetwork(log);
  return {
    check: unary(ctx, 'Check', noFields, () =>
      Promise.resolve({ status: CheckResponse_ServingStatus.SERVING }),
    ),
    getGuestDetails: unary(ctx, 'GetGuestDetails', noFields, () =>
      Promise.resolve({
        agentVersion: AGENT_VERSION,
        kernelRelease: release(),
        nodeVersion: process.version,
        memTotalBytes: totalmem(),
        cpus: cpus().length,
      }),
    ),
    createContainer: unary(ctx, 'CreateContainer', checkCreateContainer, async (r) => {
      await sandbox.createContainer(r.containerId, r.ociSpecJson, r.storages, r.sandboxContainerId);
      return empty;
    }),
    startContainer: unary(ctx, 'StartContainer', checkContainerOnly, async (r) => {
      await sandbox.startContainer(r.containerId);
      return empty;
    }),
    removeContainer: unary(ctx, 'RemoveContainer', checkContainerOnly, async (r) => {
      await sandbox.removeContainer(r.containerId);
      return empty;
    }),
    waitProcess: unary(ctx, 'WaitProcess', checkProcessRef, (r) =>
      sandbox.waitProcess(r.containerId, r.execId),
    ),
    signalProcess: unary(ctx, 'SignalProcess', checkSignalProcess, (r) => {
      sandbox.signalProcess(r.containerId, r.execId, r.signal, r.all);
      return Promise.resolve(empty);
    }),
    execProcess: unary(ctx, 'ExecProcess', checkExecProcess, async (r) => {
      await sandbox.execProcess(r.containerId, r.execId, r.processJson);
      return empty;
    }),
    listProcesses: unary(ctx, 'ListProcesses', checkContainerOnly, (r) =>
      Promise.resolve({ pids: sandbox.listProcesses(r.containerId) }),
    ),
    ttyWinResize: unary(ctx, 'TtyWinResize', checkTtyWinResize, (r) => {
      sandbox.ttyWinResize(r.containerId, r.execId, r.rows, r.columns);
      return Promise.resolve(empty);
    }),
    readStdout: stream(ctx, 'ReadStdout', sandbox, 'stdout'),
    readStderr: stream(ctx, 'ReadStderr', sandbox, 'stderr'),
    writeStdin: unary(ctx, 'WriteStdin', checkWriteStdin, async (r) => {
      await sandbox.get(r.containerId).writeStdin(r.execId, Buffer.from(r.data));
      return { len: r.data.length };
    }),
    closeStdin: unary(ctx, 'CloseStdin', checkProcessRef, (r) => {
      sandbox.get(r.containerId).closeStdin(r.execId);
      return Promise.resolve(empty);
    }),
    setupDnsRelay: unary(ctx, 'SetupDNSRelay', checkSetupDnsRelay, async (r) => {
      await dnsRelay.setup(sandbox.get(r.containerId), r.listenAddress);
      return empty;
    }),
    updateInterface: unary(ctx, 'UpdateInterface', checkUpdateInterface, (r) => {
      const iface = checkInterface(r.interface);
      return network.updateInterface(sandbox.get(r.containerId), iface);
    }),
    updateRoutes: unary(ctx, 'UpdateRoutes', checkUpdateRoutes, (r) => {
      checkRoutes(r.routes);
      return network.updateRoutes(sandbox.get(r.containerId), r.routes);
    }),
    addArpNeighbors: unary(ctx, 'AddARPNeighbors', checkAddArpNeighbors, async (r) => {
      checkNeighbors(r.neighbors);
      await network.addArpNeighbors(sandbox.get(r.containerId), r.neighbors);
      return empty;
    }),
    listInterfaces: unary(ctx, 'ListInterfaces', checkContainerOnly, (r) =>
      network.listInterfaces(sandbox.get(r.containerId)),
    ),
    listRoutes: unary(ctx, 'ListRoutes', checkContainerOnly, (r) =>
      network.listRoutes(sandbox.get(r.containerId)),
    ),
    pauseContainer: unary(ctx, 'PauseContainer', checkContainerOnly, async (r) => {
      await sandbox.pauseContainer(r.containerId);
      return empty;
    }),
    resumeContainer: unary(ctx, 'ResumeContainer', checkContainerOnly, async (r) => {
      await sandbox.resumeContainer(r.containerId);
      return empty;
    }),
    updateContainer: unary(ctx, 'UpdateContainer', checkUpdateContainer, async (r) => {
      await sandbox.updateContainer(r.containerId, r.resourcesJson);
      return empty;
    }),
    statsContainer: unary(ctx, 'StatsContainer', checkContainerOnly, (r) =>
      sandbox.statsContainer(r.containerId),
    ),
    getEvents: (call) => {
      log.debug({ rpc: 'GetEvents' }, 'request');
      call.once('close', onRequestDone);
      if (isUndecodable(call.request)) {
        failStream(log, 'GetEvents', call, undecodable(call.request));
        return;
      }
      // Until the host cancels; backpressure is not needed at OOM rates.
      const unsubscribe = sandbox.events.subscribe((e) => {
        call.write(e);
      });
      call.on('cancelled', unsubscribe);
      call.on('close', unsubscribe);
    },
    restoreGuest: unary(ctx, 'RestoreGuest', checkRestoreGuest, async (r) => {
      const done = await sandbox.restoreGuest(
        Buffer.from(r.entropy),
        BigInt(r.realtimeUs) * 1000n,
        r.shareWaitMs,
      );
      log.info({ bootId: done.bootId }, 'restored from a template: RNG reseeded, clock set');
      return {
        bootId: done.bootId,
        previousRealtimeUs: Number(done.previousRealtimeNs / 1000n),
      };
    }),
    destroySandbox: unary(ctx, 'DestroySandbox', noFields, async () => {
      await sandbox.destroy();
      // Answer first; PID 1 powers the VM off once the agent has gone.
      setImmediate(onDestroyed);
      return empty;
    }),
  };
}

interface Context {
  log: Logger;
  done: () => void;
}

function unary<Req, Res>(
  { log, done }: Context,
  name: string,
  check: (request: Req) => void,
  handler: (request: Req) => Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    log.debug({ rpc: name }, 'request');
    // A handler that throws before its first await must still map to a status.
    Promise.resolve(call.request)
      .then((request) => {
        if (isUndecodable(request)) throw undecodable(request);
        check(request);
        return handler(request);
      })
      .then(
        (res) => {
          callback(null, res);
        },
        (err: unknown) => {
          const status = toGrpcStatus(err);
          logFailure(log, name, status, err);
          callback({ code: status.code, details: status.details });
        },
      )
      .finally(done);
  };
}

function logFailure(log: Logger, name: string, status: GrpcErrorStatus, err: unknown): void {
  if (status.code === GrpcStatus.INTERNAL) {
    log.error({ rpc: name, err }, 'request failed');
  } else {
    log.info({ rpc: name, code: status.code, msg: status.details }, 'request refused');
  }
}

/**
 * Ends a server stream with the error's status. grpc-js sends a stream's
 * status from its 'error' event; destroy() would drop the call without one,
 * and the caller would wait until its deadline.
 */
function failStream(
  log: Logger,
  name: string,
  call: ServerWritableStream<unknown, unknown>,
  err: unknown,
): void {
  const status = toGrpcStatus(err);
  logFailure(log, name, status, err);
  call.emit('error', Object.assign(new Error(status.details), status));
}

function stream(
  { log, done }: Context,
  name: string,
  sandbox: Sandbox,
  which: 'stdout' | 'stderr',
): (call: ServerWritableStream<ReadStreamRequest, ReadStreamResponse>) => void {
  return (call) => {
    log.debug({ rpc: name }, 'request');
    call.once('close', done);
    let source: Readable;
    let release: () => void;
    try {
      if (isUndecodable(call.request)) throw undecodable(call.request);
      checkProcessRef(call.request);
      const { containerId, execId } = call.request;
      const container = sandbox.get(containerId);
      source = container.claimOutput(which, execId);
      release = () => {
        container.releaseOutput(source, execId);
      };
    } catch (err) {
      failStream(log, name, call, err);
      return;
    }
    const onDrain = (): void => {
      source.resume();
    };
    const onData = (data: Buffer): void => {
      if (!call.write({ data })) {
        source.pause();
        call.once('drain', onDrain);
      }
    };
    let detached = false;
    // Whichever way the call ends (output done, cancelled, connection lost),
    // the output is released for the next reader: a host that reconnects
    // reads it again.
    const detach = (): void => {
      if (detached) return;
      detached = true;
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onEnd);
      call.off('drain', onDrain);
      call.off('cancelled', detach);
      call.off('close', detach);
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
    call.on('close', detach);
    source.on('data', onData);
    source.once('end', onEnd);
    source.once('error', onEnd);
    source.resume();
  };
}
