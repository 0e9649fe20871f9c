import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { credentials, type ServiceError } from '@grpc/grpc-js';
import {
  AgentServiceClient,
  AddARPNeighborsRequest,
  type DeepPartial,
  type Interface,
  type Interfaces,
  type Routes,
  UpdateInterfaceRequest,
  UpdateRoutesRequest,
} from '../../proto/generated/agent.js';

/**
 * Network namespaces a test makes and removes, so that engines and "outside"
 * hosts never touch the machine's own network. Entered with `nsenter
 * --net=/run/netns/NAME` (DESIGN: `ip netns exec` remounts /sys, which hides
 * the cgroup mounts dockerd needs).
 */
export class TestNetns {
  private constructor(readonly name: string) {}

  static create(prefix = 'kt'): TestNetns {
    const name = `${prefix}-${randomBytes(3).toString('hex')}`;
    execFileSync('ip', ['netns', 'add', name]);
    const ns = new TestNetns(name);
    ns.ip(['link', 'set', 'lo', 'up']);
    return ns;
  }

  get path(): string {
    return `/run/netns/${this.name}`;
  }

  /** argv prefix that runs a program in this namespace. */
  get enter(): string[] {
    return ['nsenter', `--net=${this.path}`, '--'];
  }

  ip(args: string[]): string {
    return execFileSync('ip', ['-n', this.name, ...args], { encoding: 'utf8' });
  }

  /** Runs a program in the namespace to the end; its stdout. */
  run(args: string[], timeoutMs = 30_000): string {
    return execFileSync('nsenter', [`--net=${this.path}`, '--', ...args], {
      encoding: 'utf8',
      timeout: timeoutMs,
    });
  }

  remove(): void {
    execFileSync('ip', ['netns', 'del', this.name]);
  }

  /**
   * Joins this namespace and `other` with a veth pair `<a>`/`<b>` carrying
   * the given addresses (CIDR), both up.
   */
  link(other: TestNetns, a: string, aAddr: string, b: string, bAddr: string): void {
    this.ip(['link', 'add', a, 'type', 'veth', 'peer', 'name', b, 'netns', other.name]);
    this.ip(['addr', 'add', aAddr, 'dev', a]);
    other.ip(['addr', 'add', bAddr, 'dev', b]);
    this.ip(['link', 'set', a, 'up']);
    other.ip(['link', 'set', b, 'up']);
  }
}

/**
 * The machine's own network as `ip` and iptables show it: compared before and
 * after a test, it must not change. Counters and timers are left out.
 */
export function hostNetworkSnapshot(): string {
  const strip = (s: string): string =>
    s
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .map((l) => l.replace(/\[\d+:\d+\]/g, ''))
      .join('\n');
  const links = (
    JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as {
      ifname: string;
      flags: string[];
      mtu: number;
      address?: string;
    }[]
  ).map((l) => `${l.ifname} ${l.flags.join(',')} ${l.mtu} ${l.address ?? ''}`);
  return [
    ...links,
    execFileSync('ip', ['addr', 'show'], { encoding: 'utf8' }).replace(/valid_lft.*\n/g, ''),
    execFileSync('ip', ['route', 'show', 'table', 'all'], { encoding: 'utf8' }),
    execFileSync('tc', ['qdisc', 'show'], { encoding: 'utf8' }),
    strip(execFileSync('iptables-save', { encoding: 'utf8' })),
  ].join('\n');
}

/**
 * A private network namespace for a test (`ip netns add kapsel-test-...`),
 * so nothing a test does touches the machine's own namespace: the agent
 * started in it (nsenter --net=path) takes it for the guest's root one.
 */
export class PrivateNetns {
  readonly name = `kapsel-test-${process.pid}-${randomBytes(3).toString('hex')}`;
  readonly path = `/run/netns/${this.name}`;

  constructor() {
    execFileSync('ip', ['netns', 'add', this.name]);
  }

  /** `ip ARGS` in it; stdout. */
  ip(...args: string[]): string {
    return execFileSync('nsenter', [`--net=${this.path}`, 'ip', ...args], { encoding: 'utf8' });
  }

  /** The links in it (`ip -j link show`). */
  links(): { ifname: string; address: string }[] {
    return JSON.parse(this.ip('-j', 'link', 'show')) as { ifname: string; address: string }[];
  }

  remove(): void {
    execFileSync('ip', ['netns', 'del', this.name]);
  }

  get exists(): boolean {
    return existsSync(this.path);
  }
}

interface HostLink {
  ifname: string;
  address?: string;
  mtu?: number;
  flags?: string[];
}

/** What a test must leave as it was in the machine's own network namespace. */
export interface HostNetSnapshot {
  links: Map<string, string>;
  routes: string;
}

export function hostNetSnapshot(): HostNetSnapshot {
  const links = JSON.parse(
    execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' }),
  ) as HostLink[];
  const routes = ['-4', '-6']
    .map((f) =>
      execFileSync('ip', ['-j', f, 'route', 'show', 'table', 'all'], { encoding: 'utf8' }),
    )
    .join('\n');
  return {
    links: new Map(links.map((l) => [l.ifname, JSON.stringify([l.address, l.mtu, l.flags])])),
    routes,
  };
}

type Callback<T> = (err: ServiceError | null, res: T) => void;

function promised<T>(start: (cb: Callback<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    start((err, res) => {
      if (err) reject(err);
      else resolve(res);
    });
  });
}

/**
 * The network RPCs, called with the generated client as the host will
 * (runtime/src/agent/client.ts grows its own wrappers on the host side).
 */
export class NetworkClient {
  private readonly client: AgentServiceClient;

  constructor(socket: string) {
    this.client = new AgentServiceClient(`unix://${socket}`, credentials.createInsecure());
  }

  close(): void {
    this.client.close();
  }

  updateInterface(req: DeepPartial<UpdateInterfaceRequest>): Promise<Interface> {
    return promised((cb) =>
      this.client.updateInterface(UpdateInterfaceRequest.fromPartial(req), cb),
    );
  }

  updateRoutes(req: DeepPartial<UpdateRoutesRequest>): Promise<Routes> {
    return promised((cb) => this.client.updateRoutes(UpdateRoutesRequest.fromPartial(req), cb));
  }

  async addArpNeighbors(req: DeepPartial<AddARPNeighborsRequest>): Promise<void> {
    await promised((cb) =>
      this.client.addArpNeighbors(AddARPNeighborsRequest.fromPartial(req), cb),
    );
  }

  listInterfaces(containerId: string): Promise<Interfaces> {
    return promised((cb) => this.client.listInterfaces({ containerId }, cb));
  }

  listRoutes(containerId: string): Promise<Routes> {
    return promised((cb) => this.client.listRoutes({ containerId }, cb));
  }
}
