import type { Logger } from 'pino';
import type { Interface } from '../../../../proto/generated/agent.js';
import type { AgentClient } from '../agent-client.js';
import { RuntimeError } from '../../sys/errors.js';
import { Child } from '../vm/child.js';
import type { QmpClient } from '../vm/qmp.js';
import { HOTPLUG_PORTS, plugNic, unplugNic } from './hotplug.js';
import {
  interfacesOf,
  neighborsOf,
  routesOf,
  TAP_SUFFIX,
  type IpLink,
  type IpNeighbor,
  type IpRoute,
} from './host-view.js';
import { ipJson } from './iproute.js';
import { connectTap, disconnectTap, scrubNamespace } from './tcfilter.js';

/** Namespace changes come in bursts (a link, then its addresses, then routes). */
const SETTLE_MS = 300;

interface Plugged {
  link: string;
  tap: string;
  hwAddr: string;
}

/**
 * The network of one sandbox, held by its sandbox process, which runs inside
 * the container's host network namespace. `sync` mirrors that namespace into
 * the guest: a tap and a hot-plugged NIC for each link not mirrored yet, then
 * addresses, routes and neighbours through the agent (Kata's tcfilter).
 */
export class SandboxNetwork {
  readonly #plugged: (Plugged | undefined)[] = [];
  #queue: Promise<unknown> = Promise.resolve();
  #monitor: Child | undefined;
  #settle: NodeJS.Timeout | undefined;

  constructor(
    private readonly qmp: QmpClient,
    private readonly agent: AgentClient,
    private readonly log: Logger,
    /** Puts the watcher under the sandbox's supervision (supervisor.ts). */
    private readonly adopt: (name: string, child: Child) => void = () => undefined,
  ) {}

  /**
   * Mirrors the namespace as it is now into `containerId`'s (the sandbox
   * container's) guest network namespace. Calls run one at a time.
   * @returns the interfaces the guest has now, as the agent lists them
   */
  sync(containerId: string): Promise<Interface[]> {
    const run = this.#queue.then(() => this.#sync(containerId));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #sync(containerId: string): Promise<Interface[]> {
    const t0 = Date.now();
    const links = await ipJson<IpLink>(['-d', 'addr', 'show']);
    const wanted = interfacesOf(links);
    for (const [slot, p] of this.#plugged.entries()) {
      if (p && !wanted.some((w) => w.name === p.link && w.hwAddr === p.hwAddr)) {
        await this.#unplug(slot, p);
      }
    }
    for (const iface of wanted) {
      if (this.#plugged.some((p) => p?.link === iface.name && p.hwAddr === iface.hwAddr)) continue;
      await this.#plug(iface);
    }
    const plugged = Date.now();
    for (const iface of wanted) await this.agent.updateInterface({ containerId, interface: iface });
    const devices = new Set(wanted.map((i) => i.name));
    const [v4, v6, neigh] = await Promise.all([
      ipJson<IpRoute>(['-4', 'route', 'show', 'table', 'main']),
      ipJson<IpRoute>(['-6', 'route', 'show', 'table', 'main']),
      ipJson<IpNeighbor>(['neigh', 'show', 'nud', 'permanent']),
    ]);
    const routes = routesOf(v4, v6, devices);
    if (routes.length > 0) await this.agent.updateRoutes({ containerId, routes });
    const neighbors = neighborsOf(neigh, devices);
    if (neighbors.length > 0) await this.agent.addArpNeighbors({ containerId, neighbors });
    this.log.info(
      {
        interfaces: wanted.map((i) => i.name),
        routes: routes.length,
        plugMs: plugged - t0,
        guestMs: Date.now() - plugged,
      },
      'network mirrored into the guest',
    );
    return wanted.length === 0 ? [] : (await this.agent.listInterfaces(containerId)).interfaces;
  }

  async #plug(iface: Interface): Promise<void> {
    let slot = this.#plugged.findIndex((p) => p === undefined);
    if (slot < 0) slot = this.#plugged.length;
    if (slot >= HOTPLUG_PORTS) {
      throw new RuntimeError(
        `network interface ${iface.name}: a sandbox takes at most ${HOTPLUG_PORTS} interfaces`,
      );
    }
    const tap = `tap${slot}${TAP_SUFFIX}`;
    await connectTap(iface.name, tap, iface.mtu);
    try {
      await plugNic(this.qmp, slot, tap, iface.hwAddr);
    } catch (err) {
      await disconnectTap(iface.name, tap);
      throw new RuntimeError(`hot-plug a NIC for ${iface.name}: ${(err as Error).message}`, 1, {
        cause: err,
      });
    }
    this.#plugged[slot] = { link: iface.name, tap, hwAddr: iface.hwAddr };
    this.log.debug({ link: iface.name, tap, slot }, 'NIC hot-plugged');
  }

  async #unplug(slot: number, p: Plugged): Promise<void> {
    try {
      await unplugNic(this.qmp, slot);
    } finally {
      await disconnectTap(p.link, p.tap);
      this.#plugged[slot] = undefined;
    }
    this.log.info({ link: p.link, slot }, 'NIC unplugged: its link left the namespace');
  }

  /**
   * Follows the namespace after the first sync: links the engine adds or
   * removes later (`docker network connect` / `disconnect`, which configure
   * the namespace without calling the runtime) are mirrored once their
   * changes settle. `ip monitor` prints a line per change of links,
   * addresses and routes here; our own taps cause one more sync, which finds
   * nothing new.
   */
  async watch(containerId: string): Promise<void> {
    if (this.#monitor !== undefined) return;
    // A Child: it dies with this process (pdeathsig), even when SIGKILLed.
    const child = await Child.start('ip', ['monitor', 'link', 'address', 'route'], {
      stdout: 'pipe',
    });
    this.#monitor = child;
    this.adopt('the namespace watcher (ip monitor)', child);
    child.proc.stdout?.on('data', () => {
      clearTimeout(this.#settle);
      this.#settle = setTimeout(() => {
        this.sync(containerId).catch((err: unknown) => {
          this.log.warn({ err }, 'mirroring a change of the network namespace failed');
        });
      }, SETTLE_MS);
    });
  }

  /**
   * Stops following the namespace and removes the taps and ingress qdiscs
   * made in it. In a namespace kapsel made they would go with it; an
   * engine's (Podman, CNI) outlives the sandbox, so they are removed.
   */
  async release(): Promise<void> {
    this.#monitor?.proc.kill('SIGKILL');
    clearTimeout(this.#settle);
    await this.#queue;
    this.#plugged.length = 0;
    await scrubNamespace();
  }
}
