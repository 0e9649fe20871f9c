import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials, type ServiceError } from '@grpc/grpc-js';
import {
  ContainerStatsRequest,
  ContainerStatusRequest,
  CreateContainerRequest,
  ExecSyncRequest,
  ImageServiceClient,
  PodSandboxStatusRequest,
  RemoveContainerRequest,
  RemovePodSandboxRequest,
  RunPodSandboxRequest,
  RuntimeServiceClient,
  StartContainerRequest,
  StopContainerRequest,
  StopPodSandboxRequest,
  VersionRequest,
  type ContainerStatsResponse,
  type CreateContainerResponse,
  type RunPodSandboxResponse,
  type ContainerStatusResponse,
  type ExecSyncResponse,
  type ListImagesResponse,
  type PodSandboxStatusResponse,
  type VersionResponse,
} from '../../proto/generated/cri.js';
import { PrivateContainerd } from './containerd.js';
import { TestNetns } from './netns.js';

/** containerd's namespace for everything its CRI plugin makes. */
export const CRI_NS = 'k8s.io';
/** The pod sandbox image the CRI plugin runs first in every pod: busybox sleeping, built here. */
export const PAUSE_IMAGE = 'docker.io/library/kpause:latest';
/** Debian's containernetworking-plugins. */
export const CNI_BIN_DIR = '/usr/lib/cni';

type Callback<T> = (err: ServiceError | null, res: T) => void;

/** One unary call as a promise; a refusal rejects with the gRPC status's details. */
function unary<T>(call: (cb: Callback<T>) => unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    call((err, res) => {
      if (err !== null) reject(new Error(`cri: ${err.details || err.message}`, { cause: err }));
      else resolve(res);
    });
  });
}

/**
 * A CRI client as kubelet is one: runtime.v1 RuntimeService and ImageService
 * over gRPC on containerd's socket, messages from proto/cri.proto.
 */
export class CriClient {
  readonly #rt: RuntimeServiceClient;
  readonly #img: ImageServiceClient;

  constructor(socket: string) {
    this.#rt = new RuntimeServiceClient(`unix://${socket}`, credentials.createInsecure());
    this.#img = new ImageServiceClient(`unix://${socket}`, credentials.createInsecure());
  }

  version(): Promise<VersionResponse> {
    return unary((cb) => this.#rt.version(VersionRequest.fromPartial({ version: 'v1' }), cb));
  }

  async runPodSandbox(
    req: Parameters<typeof RunPodSandboxRequest.fromPartial>[0],
  ): Promise<string> {
    const r = await unary<RunPodSandboxResponse>((cb) =>
      this.#rt.runPodSandbox(RunPodSandboxRequest.fromPartial(req), cb),
    );
    return r.podSandboxId;
  }

  podSandboxStatus(id: string): Promise<PodSandboxStatusResponse> {
    return unary((cb) =>
      this.#rt.podSandboxStatus(PodSandboxStatusRequest.fromPartial({ podSandboxId: id }), cb),
    );
  }

  async stopPodSandbox(id: string): Promise<void> {
    await unary((cb) =>
      this.#rt.stopPodSandbox(StopPodSandboxRequest.fromPartial({ podSandboxId: id }), cb),
    );
  }

  async removePodSandbox(id: string): Promise<void> {
    await unary((cb) =>
      this.#rt.removePodSandbox(RemovePodSandboxRequest.fromPartial({ podSandboxId: id }), cb),
    );
  }

  async createContainer(
    req: Parameters<typeof CreateContainerRequest.fromPartial>[0],
  ): Promise<string> {
    const r = await unary<CreateContainerResponse>((cb) =>
      this.#rt.createContainer(CreateContainerRequest.fromPartial(req), cb),
    );
    return r.containerId;
  }

  async startContainer(id: string): Promise<void> {
    await unary((cb) =>
      this.#rt.startContainer(StartContainerRequest.fromPartial({ containerId: id }), cb),
    );
  }

  /** StopContainer: SIGTERM, then SIGKILL after `timeout` seconds. */
  async stopContainer(id: string, timeout: number): Promise<void> {
    await unary((cb) =>
      this.#rt.stopContainer(
        StopContainerRequest.fromPartial({ containerId: id, timeout: BigInt(timeout) }),
        cb,
      ),
    );
  }

  async removeContainer(id: string): Promise<void> {
    await unary((cb) =>
      this.#rt.removeContainer(RemoveContainerRequest.fromPartial({ containerId: id }), cb),
    );
  }

  containerStatus(id: string): Promise<ContainerStatusResponse> {
    return unary((cb) =>
      this.#rt.containerStatus(ContainerStatusRequest.fromPartial({ containerId: id }), cb),
    );
  }

  /** ExecSync; `timeout` in seconds, 0 for none (kubelet's probes set one). */
  execSync(id: string, cmd: string[], timeout = 0): Promise<ExecSyncResponse> {
    return unary((cb) =>
      this.#rt.execSync(
        ExecSyncRequest.fromPartial({ containerId: id, cmd, timeout: BigInt(timeout) }),
        cb,
      ),
    );
  }

  containerStats(id: string): Promise<ContainerStatsResponse> {
    return unary((cb) =>
      this.#rt.containerStats(ContainerStatsRequest.fromPartial({ containerId: id }), cb),
    );
  }

  listImages(): Promise<ListImagesResponse> {
    return unary((cb) => this.#img.listImages({ filter: undefined }, cb));
  }

  close(): void {
    this.#rt.close();
    this.#img.close();
  }
}

/**
 * A Kubernetes node's runtime side without kubelet: a private containerd
 * with its CRI plugin (runtime handlers `runc` and `kapsel`, CNI bridge +
 * host-local + loopback from a conf dir of its own, the sandbox image built
 * here), run inside a network namespace this makes and removes, so the CNI
 * bridge, the pods' veths and their routes never touch the machine's own
 * network. stop() leaves nothing: containerd, its dirs, the namespace.
 */
export class CriNode {
  private constructor(
    readonly netns: TestNetns,
    readonly containerd: PrivateContainerd,
    readonly cri: CriClient,
    /** The pods' subnet (/24) and the bridge's address in it. */
    readonly subnet: string,
    readonly gateway: string,
    readonly cniDataDir: string,
  ) {}

  static async start(env: Record<string, string> = {}): Promise<CriNode> {
    const netns = TestNetns.create('kcri');
    // 10.<200-249>.<n>.0/24: unlikely to meet another test's or the host's.
    const [a, b] = randomBytes(2);
    const net = `10.${200 + ((a ?? 0) % 50)}.${b ?? 0}`;
    const subnet = `${net}.0/24`;
    const gateway = `${net}.1`;
    let containerd: PrivateContainerd | undefined;
    try {
      containerd = await PrivateContainerd.start(env, {
        enter: netns.enter,
        config: (dir) => {
          const conf = join(dir, 'cni');
          mkdirSync(conf);
          writeFileSync(join(conf, '10-kapsel-test.conflist'), cniConf(subnet, gateway, dir));
          return criConfig(conf);
        },
      });
      await containerd.importImage(CRI_NS, PAUSE_IMAGE, {
        Entrypoint: ['/bin/sleep', '2147483647'],
        Cmd: [],
      });
      const dir = containerd.dir;
      return new CriNode(
        netns,
        containerd,
        new CriClient(containerd.address),
        subnet,
        gateway,
        join(dir, 'cni-ipam'),
      );
    } catch (err) {
      await containerd?.stop();
      netns.remove();
      throw err;
    }
  }

  get dir(): string {
    return this.containerd.dir;
  }

  /** Links in the node's namespace of a kind (`veth`, `bridge`), by name. */
  linksOfKind(kind: string): string[] {
    const links = JSON.parse(this.netns.ip(['-d', '-j', 'link', 'show'])) as {
      ifname: string;
      linkinfo?: { info_kind?: string };
    }[];
    return links.filter((l) => l.linkinfo?.info_kind === kind).map((l) => l.ifname);
  }

  /** Addresses host-local still holds (its files named for them). */
  allocatedIps(): string[] {
    try {
      return readdirSync(join(this.cniDataDir, 'kapsel-test')).filter((f) => /^\d/.test(f));
    } catch {
      return [];
    }
  }

  async stop(): Promise<void> {
    this.cri.close();
    await this.containerd.stop();
    this.netns.remove();
  }
}

/** The containerd CRI config (1.6 `version = 2`): README's snippet plus a private node's dirs. */
function criConfig(cniConfDir: string): string[] {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return [
    `[${cri}]`,
    `  sandbox_image = "${PAUSE_IMAGE}"`,
    // The streaming server (Exec/Attach, unused here) on the node's own loopback.
    '  stream_server_address = "127.0.0.1"',
    '  stream_server_port = "0"',
    // The sandbox's oom_score_adj -998 needs CAP_SYS_RESOURCE, absent here:
    // kept no lower than containerd's own, as in nested or rootless nodes.
    '  restrict_oom_score_adj = true',
    `[${cri}.containerd]`,
    '  default_runtime_name = "runc"',
    `[${cri}.containerd.runtimes.runc]`,
    '  runtime_type = "io.containerd.runc.v2"',
    `[${cri}.containerd.runtimes.kapsel]`,
    '  runtime_type = "io.containerd.kapsel.v2"',
    // containerd adds CNI's loopback plugin (from bin_dir) to every pod itself.
    `[${cri}.cni]`,
    `  bin_dir = "${CNI_BIN_DIR}"`,
    `  conf_dir = "${cniConfDir}"`,
    '  max_conf_num = 1',
  ];
}

/** A CNI conflist: a bridge with the gateway address (the node reaches pods), host-local IPAM under `dir`. */
function cniConf(subnet: string, gateway: string, dir: string): string {
  return JSON.stringify({
    cniVersion: '0.4.0',
    name: 'kapsel-test',
    plugins: [
      {
        type: 'bridge',
        bridge: 'kcni0',
        isGateway: true,
        ipMasq: false,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet, gateway }]],
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir: join(dir, 'cni-ipam'),
        },
      },
    ],
  });
}

/** /run/netns entries the CRI plugin pins pod namespaces at. */
export function cniNetnsEntries(): string[] {
  try {
    return readdirSync('/run/netns').filter((n) => n.startsWith('cni-'));
  } catch {
    return [];
  }
}
