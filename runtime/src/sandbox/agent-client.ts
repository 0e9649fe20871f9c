import {
  credentials,
  Metadata,
  status,
  type ChannelInterface,
  type CallOptions,
  type ServiceError,
} from '@grpc/grpc-js';
import {
  AgentServiceClient,
  type CheckResponse,
  CreateContainerRequest,
  type DeepPartial,
  type Empty,
  type Event,
  type GuestDetailsResponse,
  AddARPNeighborsRequest,
  type Interface,
  type Interfaces,
  type Routes,
  UpdateInterfaceRequest,
  UpdateRoutesRequest,
  type StatsContainerResponse,
  type ListProcessesResponse,
  type ReadStreamResponse,
  type RestoreGuestRequest,
  type RestoreGuestResponse,
  type WaitProcessResponse,
} from '../../../proto/generated/agent.js';
import type { Readable } from 'node:stream';
import { RuntimeError } from '../sys/errors.js';

type Callback<T> = (err: ServiceError | null, res: T) => void;

/**
 * The deadline of every unary call that does not name its own: a sandbox
 * process or agent that stopped answering fails the call instead of
 * hanging it. Generous, for TCG guests where CreateContainer takes seconds.
 */
export const DEFAULT_DEADLINE_MS = 60_000;

/**
 * The host's typed, promise-returning view of the agent API. The runtime owns
 * exactly one of these per sandbox (one HTTP/2 connection over the
 * virtio-serial port).
 */
export class AgentClient {
  private readonly client: AgentServiceClient;

  constructor(address: string) {
    this.client = new AgentServiceClient(address, credentials.createInsecure(), {
      // The port is a private channel to one guest: no retries or proxies.
      'grpc.enable_retries': 0,
      'grpc.enable_http_proxy': 0,
      // Its own connection, never one shared with an earlier client of the
      // same socket path: a sandbox started from a template that failed is
      // booted again at the same path, and a shared subchannel would still
      // be backing off from the failed guest.
      'grpc.use_local_subchannel_pool': 1,
    });
  }

  static forSocket(path: string): AgentClient {
    return new AgentClient(`unix://${path}`);
  }

  /** The HTTP/2 channel, for a byte-level client sharing this one connection. */
  channel(): ChannelInterface {
    return this.client.getChannel();
  }

  close(): void {
    this.client.close();
  }

  check(deadlineMs = 30_000): Promise<CheckResponse> {
    return this.call((md, o, cb) => this.client.check({}, md, o, cb), deadlineMs);
  }

  guestDetails(): Promise<GuestDetailsResponse> {
    return this.call((md, o, cb) => this.client.getGuestDetails({}, md, o, cb));
  }

  /** Fields left out take their proto3 defaults. */
  async createContainer(req: DeepPartial<CreateContainerRequest>): Promise<void> {
    const full = CreateContainerRequest.fromPartial(req);
    await this.call<Empty>((md, o, cb) => this.client.createContainer(full, md, o, cb));
  }

  async startContainer(containerId: string): Promise<void> {
    await this.call<Empty>((md, o, cb) => this.client.startContainer({ containerId }, md, o, cb));
  }

  async removeContainer(containerId: string, deadlineMs?: number): Promise<void> {
    await this.call<Empty>(
      (md, o, cb) => this.client.removeContainer({ containerId }, md, o, cb),
      deadlineMs,
    );
  }

  /** No deadline: it lasts as long as the process; it fails when the connection does. */
  waitProcess(containerId: string, execId = ''): Promise<WaitProcessResponse> {
    return this.call(
      (md, o, cb) => this.client.waitProcess({ containerId, execId }, md, o, cb),
      Infinity,
    );
  }

  async signalProcess(
    containerId: string,
    signal: number,
    execId = '',
    all = false,
    deadlineMs?: number,
  ): Promise<void> {
    await this.call<Empty>(
      (md, o, cb) => this.client.signalProcess({ containerId, execId, signal, all }, md, o, cb),
      deadlineMs,
    );
  }

  /** runc exec: processJson is an OCI process. */
  async execProcess(containerId: string, execId: string, processJson: string): Promise<void> {
    await this.call<Empty>((md, o, cb) =>
      this.client.execProcess({ containerId, execId, processJson }, md, o, cb),
    );
  }

  async listProcesses(containerId: string): Promise<number[]> {
    const res = await this.call<ListProcessesResponse>((md, o, cb) =>
      this.client.listProcesses({ containerId }, md, o, cb),
    );
    return res.pids;
  }

  async ttyWinResize(
    containerId: string,
    rows: number,
    columns: number,
    execId = '',
  ): Promise<void> {
    await this.call<Empty>((md, o, cb) =>
      this.client.ttyWinResize({ containerId, execId, rows, columns }, md, o, cb),
    );
  }

  async writeStdin(containerId: string, data: Buffer, execId = ''): Promise<void> {
    await this.call((md, o, cb) =>
      this.client.writeStdin({ containerId, execId, data }, md, o, cb),
    );
  }

  async closeStdin(containerId: string, execId = ''): Promise<void> {
    await this.call<Empty>((md, o, cb) =>
      this.client.closeStdin({ containerId, execId }, md, o, cb),
    );
  }

  async pauseContainer(containerId: string): Promise<void> {
    await this.call<Empty>((md, o, cb) => this.client.pauseContainer({ containerId }, md, o, cb));
  }

  async resumeContainer(containerId: string, deadlineMs?: number): Promise<void> {
    await this.call<Empty>(
      (md, o, cb) => this.client.resumeContainer({ containerId }, md, o, cb),
      deadlineMs,
    );
  }

  /** resources: OCI linux.resources (object or JSON); what it leaves out stays as it is. */
  async updateContainer(containerId: string, resources: object | string): Promise<void> {
    const resourcesJson = typeof resources === 'string' ? resources : JSON.stringify(resources);
    await this.call<Empty>((md, o, cb) =>
      this.client.updateContainer({ containerId, resourcesJson }, md, o, cb),
    );
  }

  statsContainer(containerId: string): Promise<StatsContainerResponse> {
    return this.call((md, o, cb) => this.client.statsContainer({ containerId }, md, o, cb));
  }

  /**
   * Guest events (OOM kills) as they happen, until cancel() is called or the
   * connection ends.
   */
  events(): { events: AsyncIterable<Event>; cancel: () => void } {
    const stream = this.client.getEvents({});
    return {
      events: (async function* () {
        try {
          for await (const e of stream) yield e as Event;
        } catch (err) {
          // Cancelling is how a caller stops reading, not a failure.
          if ((err as Partial<ServiceError>).code !== status.CANCELLED) throw err;
        }
      })(),
      cancel: () => {
        stream.cancel();
      },
    };
  }

  /** The first call to a guest restored from a template (template/restore-guest.ts). */
  restoreGuest(req: RestoreGuestRequest, deadlineMs = 30_000): Promise<RestoreGuestResponse> {
    return this.call((md, o, cb) => this.client.restoreGuest(req, md, o, cb), deadlineMs);
  }

  async destroySandbox(deadlineMs = 10_000): Promise<void> {
    await this.call<Empty>((md, o, cb) => this.client.destroySandbox({}, md, o, cb), deadlineMs);
  }

  /** A stream of the process's output; ends when the process closes it. */
  readOutput(which: 'stdout' | 'stderr', containerId: string, execId = ''): AsyncIterable<Buffer> {
    const req = { containerId, execId };
    const stream: Readable =
      which === 'stdout' ? this.client.readStdout(req) : this.client.readStderr(req);
    return (async function* () {
      for await (const msg of stream) yield (msg as ReadStreamResponse).data;
    })();
  }

  /** Kata's UpdateInterface: the NIC with `interface.hwAddr` joins the container's netns as described. */
  updateInterface(req: DeepPartial<UpdateInterfaceRequest>): Promise<Interface> {
    const full = UpdateInterfaceRequest.fromPartial(req);
    return this.call((md, o, cb) => this.client.updateInterface(full, md, o, cb));
  }

  updateRoutes(req: DeepPartial<UpdateRoutesRequest>): Promise<Routes> {
    const full = UpdateRoutesRequest.fromPartial(req);
    return this.call((md, o, cb) => this.client.updateRoutes(full, md, o, cb));
  }

  async addArpNeighbors(req: DeepPartial<AddARPNeighborsRequest>): Promise<void> {
    const full = AddARPNeighborsRequest.fromPartial(req);
    await this.call<Empty>((md, o, cb) => this.client.addArpNeighbors(full, md, o, cb));
  }

  listInterfaces(containerId: string): Promise<Interfaces> {
    return this.call((md, o, cb) => this.client.listInterfaces({ containerId }, md, o, cb));
  }

  listRoutes(containerId: string): Promise<Routes> {
    return this.call((md, o, cb) => this.client.listRoutes({ containerId }, md, o, cb));
  }

  async setupDnsRelay(containerId: string, listenAddress: string): Promise<void> {
    await this.call<Empty>((md, o, cb) =>
      this.client.setupDnsRelay({ containerId, listenAddress }, md, o, cb),
    );
  }

  private call<Res>(
    invoke: (metadata: Metadata, options: Partial<CallOptions>, cb: Callback<Res>) => unknown,
    deadlineMs = DEFAULT_DEADLINE_MS,
  ): Promise<Res> {
    const options: Partial<CallOptions> =
      deadlineMs === Infinity ? {} : { deadline: Date.now() + deadlineMs };
    return new Promise((resolve, reject) => {
      invoke(new Metadata(), options, (err, res) => {
        if (err) reject(err);
        else resolve(res);
      });
    });
  }
}

/**
 * Awaits an agent call whose failure the user should see: a refusal becomes
 * a RuntimeError with the agent's own words and its gRPC code.
 */
export async function agentCall<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw RuntimeError.fromGrpc(err);
  }
}
