import { stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import {
  type ARPNeighbor,
  type Interface,
  type Interfaces,
  type Route,
  type Routes,
} from '../../../proto/generated/agent.js';
import { failedPrecondition, notFound } from '../errors.js';
import { batchFailure, realIp, type IpRunner } from './ip.js';
import {
  interfaceCommands,
  LIST_ROUTES_COMMAND,
  neighborCommands,
  routeCommands,
  splitJsonValues,
  toInterface,
  toRoutes,
  type IpLink,
  type IpRoute,
} from './iproute.js';

/** What the network RPCs need of a container: its init owns the namespace. */
export interface NetnsOwner {
  readonly id: string;
  readonly pid: number;
  readonly status: string;
}

export interface GuestNetworkOptions {
  /**
   * How long UpdateInterface waits for the NIC to appear, in ms: the host
   * hot-plugs it just before, and PCIe hotplug plus virtio_net probing
   * takes seconds under TCG. Default KAPSEL_NIC_WAIT_MS or 20 000.
   */
  nicWaitMs?: number;
  /** How often it looks, in ms (default 50). */
  pollMs?: number;
  ip?: IpRunner;
}

const DEFAULT_NIC_WAIT_MS = 20_000;

function envWaitMs(): number {
  const v = Number(process.env['KAPSEL_NIC_WAIT_MS']);
  return Number.isFinite(v) && v >= 0 && process.env['KAPSEL_NIC_WAIT_MS'] !== ''
    ? v
    : DEFAULT_NIC_WAIT_MS;
}

/**
 * The guest side of container networking, in Kata's model (the tcfilter
 * network model): the host hot-plugs one virtio-net NIC per interface of the
 * container's host network namespace, with that interface's MAC; the NIC
 * appears in the guest's root namespace (where the agent runs), and the
 * agent moves it into the container's namespace and configures it there as
 * the host side was. Kata's agent does the same in its sandbox namespace
 * with netlink (src/agent/src/netlink.rs); here every step is iproute2.
 *
 * Changes are made one at a time (a queue), so two NICs moving at once
 * cannot race for a name.
 */
export class GuestNetwork {
  private readonly ip: IpRunner;
  private readonly nicWaitMs: number;
  private readonly pollMs: number;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly log: Logger,
    options: GuestNetworkOptions = {},
  ) {
    this.ip = options.ip ?? realIp;
    this.nicWaitMs = options.nicWaitMs ?? envWaitMs();
    this.pollMs = options.pollMs ?? 50;
  }

  /**
   * UpdateInterface: finds the NIC whose MAC is iface.hwAddr, in the
   * container's namespace already (a repeated call) or in the guest's root
   * one, waiting up to nicWaitMs for it to appear there (NOT_FOUND after);
   * moves it in under iface.name; then renames it if needed, sets the MTU
   * (when > 0), exactly iface's addresses (IPv6 link-local ones are the
   * kernel's and stay) and sets it up. Calling it again with the same
   * message changes nothing; with other addresses it swaps them without
   * taking the link down (routes survive) unless it has to rename.
   * Returns the interface as `ip -j addr show` lists it afterwards.
   */
  async updateInterface(c: NetnsOwner, iface: Interface): Promise<Interface> {
    const pid = await this.netnsPid(c);
    return this.serialized(async () => {
      const started = Date.now();
      const mac = iface.hwAddr;
      let link = (await this.linksIn(c, pid)).find((l) => l.address === mac);
      const moved = link === undefined;
      if (link === undefined) {
        const nic = await this.waitForNic(mac);
        const args = ['link', 'set', 'dev', nic.ifname, 'netns', String(pid), 'name', iface.name];
        // One RTM_NEWLINK: the kernel moves and names it at once
        // (dev_change_net_namespace with the name as pattern), so a second
        // NIC the guest also called eth0 cannot collide on the way in.
        await this.ip.run(args).catch((err: unknown) => {
          throw batchFailure(
            err,
            [],
            `(moving ${mac} into the network namespace of container ${c.id})`,
          );
        });
        link = { ...nic, ifname: iface.name, addr_info: [] };
      }
      const lines = interfaceCommands(link, iface, moved);
      if (lines.some((l) => l.startsWith('addr del ') && !l.includes(':'))) {
        await this.promoteSecondaries(c, pid, link.ifname);
      }
      const out = await this.batch(c, pid, lines);
      const shown = splitJsonValues(out).at(-1) as IpLink[] | undefined;
      const result = shown?.[0];
      if (result === undefined) throw new Error(`ip addr show dev ${iface.name} printed nothing`);
      this.log.info(
        { container: c.id, mac, name: iface.name, moved, ms: Date.now() - started },
        'interface updated',
      );
      return toInterface(result);
    });
  }

  /**
   * UpdateRoutes: `ip route replace` of each route (on-link ones first), so
   * an existing route to the same destination is replaced, nothing else is
   * removed. Returns ListRoutes afterwards.
   */
  async updateRoutes(c: NetnsOwner, routes: readonly Route[]): Promise<Routes> {
    const pid = await this.netnsPid(c);
    return this.serialized(async () => {
      const lines = [...routeCommands(routes), LIST_ROUTES_COMMAND];
      return routesFrom(await this.batch(c, pid, lines));
    });
  }

  /** AddARPNeighbors: `ip neigh replace ... nud permanent` each. */
  async addArpNeighbors(c: NetnsOwner, neighbors: readonly ARPNeighbor[]): Promise<void> {
    const pid = await this.netnsPid(c);
    if (neighbors.length === 0) return;
    await this.serialized(() => this.batch(c, pid, neighborCommands(neighbors)));
  }

  /** Every interface of the namespace, lo included, with every address. */
  async listInterfaces(c: NetnsOwner): Promise<Interfaces> {
    const pid = await this.netnsPid(c);
    return { interfaces: (await this.linksIn(c, pid)).map(toInterface) };
  }

  /** The main table's unicast routes of both families, the kernel's too. */
  async listRoutes(c: NetnsOwner): Promise<Routes> {
    const pid = await this.netnsPid(c);
    return routesFrom(await this.batch(c, pid, [LIST_ROUTES_COMMAND]));
  }

  /**
   * The pid whose /proc/<pid>/ns/net is the container's namespace. Refused
   * (FAILED_PRECONDITION) when the container has stopped, or shares the
   * agent's own namespace (no linux.namespaces "network" entry): moving the
   * NIC "into" it would leave it in the guest's root namespace, configured
   * for a container that can reach everything the agent can.
   */
  private async netnsPid(c: NetnsOwner): Promise<number> {
    const gone = (): Error =>
      failedPrecondition(`container ${c.id} is stopped: its network namespace is gone`);
    if (c.status === 'stopped') throw gone();
    const [theirs, ours] = await Promise.all([
      stat(`/proc/${c.pid}/ns/net`).catch(() => undefined),
      stat('/proc/self/ns/net'),
    ]);
    if (theirs === undefined) throw gone();
    if (theirs.ino === ours.ino && theirs.dev === ours.dev) {
      throw failedPrecondition(
        `container ${c.id} has no network namespace of its own (it shares the guest's): its spec needs a linux.namespaces entry of type "network"`,
      );
    }
    return c.pid;
  }

  private async linksIn(c: NetnsOwner, pid: number): Promise<IpLink[]> {
    const [links] = splitJsonValues(await this.batch(c, pid, ['addr show']));
    return (links ?? []) as IpLink[];
  }

  /**
   * An IPv4 address added in the subnet of an existing one is its
   * "secondary", and deleting the primary deletes its secondaries too
   * unless promote_secondaries is set (as systemd sets it by default), so
   * swapping 10.0.0.2/24 for 10.0.0.3/24 would leave no address. The
   * setting is per namespace: written from inside it, /proc/sys/net is that
   * namespace's whichever /proc it is read through.
   */
  private async promoteSecondaries(c: NetnsOwner, pid: number, ifname: string): Promise<void> {
    const path = `/proc/sys/net/ipv4/conf/${ifname}/promote_secondaries`;
    await this.ip
      .run([path], { netnsPid: pid, stdin: '1\n', program: 'tee' })
      .catch((err: unknown) => {
        throw batchFailure(err, [], `(in the network namespace of container ${c.id})`);
      });
  }

  /** Polls the agent's (the guest's root) namespace for a link with this MAC. */
  private async waitForNic(mac: string): Promise<IpLink> {
    const deadline = Date.now() + this.nicWaitMs;
    for (;;) {
      const links = JSON.parse(await this.ip.run(['-j', 'link', 'show'])) as IpLink[];
      const nic = links.find((l) => l.address === mac && l.ifname !== 'lo');
      if (nic !== undefined) return nic;
      if (Date.now() >= deadline) {
        throw notFound(
          `interface.hw_addr: no network interface with MAC ${mac} appeared in the guest within ${this.nicWaitMs} ms (the host hot-plugs a virtio-net NIC with that MAC first)`,
        );
      }
      await sleep(this.pollMs);
    }
  }

  /** `ip -j -batch -` in the container's namespace; a failure names its line. */
  private async batch(c: NetnsOwner, pid: number, lines: readonly string[]): Promise<string> {
    try {
      return await this.ip.run(['-j', '-batch', '-'], {
        netnsPid: pid,
        stdin: lines.join('\n') + '\n',
      });
    } catch (err) {
      throw batchFailure(err, lines, `(in the network namespace of container ${c.id})`);
    }
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }
}

/** The routes of the last listing in an `ip -j -batch -` output. */
function routesFrom(out: string): Routes {
  const listed = (splitJsonValues(out).at(-1) ?? []) as IpRoute[];
  return { routes: toRoutes(listed) };
}
