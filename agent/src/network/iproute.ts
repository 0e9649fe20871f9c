import {
  IPFamily,
  type ARPNeighbor,
  type IPAddress,
  type Interface,
  type Route,
} from '../../../proto/generated/agent.js';

/**
 * The pure half of the network RPCs: validated messages into iproute2
 * command lines (for `ip -batch -`, one command a line, no shell), and
 * `ip -j` output into messages. The lines are safe to join: validate.ts
 * refuses whitespace, quotes and '#' in every field that reaches them.
 */

/** One element of `ip -j addr show` (iproute2 6.1's print_linkinfo). */
export interface IpLink {
  ifindex: number;
  ifname: string;
  /** MAC for ether links; "00:00:00:00:00:00" for lo; absent for some tunnels. */
  address?: string;
  mtu?: number;
  flags?: string[];
  addr_info?: IpAddrInfo[];
}

export interface IpAddrInfo {
  family: string;
  local?: string;
  prefixlen?: number;
  scope?: string;
}

/** One element of `ip -j route show table all` (iproute2 6.1's print_route). */
export interface IpRoute {
  /** Absent for unicast. */
  type?: string;
  dst: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
  /** Absent for universe (global) scope. */
  scope?: string;
  metric?: number;
  protocol?: string;
  /** Absent when only the main table was asked for. */
  table?: string;
  /** IPv6 only: the router preference ("medium"). */
  pref?: string;
}

const isV6 = (family: IPFamily): boolean => family === IPFamily.IP_FAMILY_V6;

function addressArg(a: IPAddress): string {
  return `${a.address}/${a.prefixLength}`;
}

/** The key addresses are compared by: what `ip -j addr` lists back. */
export function addressKey(a: IPAddress): string {
  return `${isV6(a.family) ? 6 : 4} ${addressArg(a)}`;
}

/**
 * The commands that give an interface already in the container's
 * namespace (named `current`) the state UpdateInterface asks for, ending
 * with `addr show` of it so one `ip -j -batch -` both sets and reports.
 *
 * Addresses: the wanted ones are added (`replace`, so an existing one is no
 * error) before the unwanted ones are removed, so the interface never has
 * none: when the last IPv4 address goes, the kernel drops every route
 * through the device (fib_disable_ip), and a second UpdateInterface would
 * lose the routes UpdateRoutes set. IPv6 link-local addresses (scope link)
 * are the kernel's own (addrconf) and stay.
 *
 * IPv6 addresses get `nodad`: duplicate address detection would keep them
 * "tentative", unusable as a source, for about a second after the call
 * returns; the host owns the address plan, as Kata's agent assumes.
 *
 * A rename needs the link down (dev_change_name: EBUSY while up), which
 * drops the routes through it; so the link goes down only for a rename.
 */
export function interfaceCommands(
  current: IpLink,
  want: Interface,
  /** Just moved in: no addresses to keep (a move clears them), link down. */
  moved: boolean,
): string[] {
  const lines: string[] = [];
  const dev = want.name;
  if (current.ifname !== want.name) {
    if (!moved) lines.push(`link set dev ${current.ifname} down`);
    lines.push(`link set dev ${current.ifname} name ${want.name}`);
  }
  if (want.mtu > 0 && want.mtu !== current.mtu) lines.push(`link set dev ${dev} mtu ${want.mtu}`);
  const wanted = new Set(want.ipAddresses.map(addressKey));
  for (const a of want.ipAddresses) {
    lines.push(`addr replace ${addressArg(a)} dev ${dev}${isV6(a.family) ? ' nodad' : ''}`);
  }
  if (!moved) {
    for (const a of addressesOf(current)) {
      const linkLocal6 = isV6(a.family) && a.scope === 'link';
      if (!linkLocal6 && !wanted.has(addressKey(a))) {
        lines.push(`addr del ${addressArg(a)} dev ${dev}`);
      }
    }
  }
  lines.push(`link set dev ${dev} up`);
  lines.push(`addr show dev ${dev}`);
  return lines;
}

/** `ip route replace` per route; on-link routes first, gateways need them. */
export function routeCommands(routes: readonly Route[]): string[] {
  const ordered = [
    ...routes.filter((r) => r.gateway === ''),
    ...routes.filter((r) => r.gateway !== ''),
  ];
  return ordered.map((r) => {
    // "default" alone would be IPv4 unless a gateway says otherwise; the
    // explicit all-zero prefix names the family for a device-only route.
    const dest = r.dest === 'default' ? (isV6(r.family) ? '::/0' : '0.0.0.0/0') : r.dest;
    const parts = ['route replace', dest];
    if (r.gateway !== '') parts.push('via', r.gateway);
    if (r.device !== '') parts.push('dev', r.device);
    if (r.source !== '') parts.push('src', r.source);
    if (r.scope !== '') parts.push('scope', r.scope);
    if (r.metric > 0) parts.push('metric', String(r.metric));
    return parts.join(' ');
  });
}

/** Permanent entries, as Kata's agent adds them (NUD_PERMANENT). */
export function neighborCommands(neighbors: readonly ARPNeighbor[]): string[] {
  return neighbors.map(
    (n) => `neigh replace ${n.toIp} lladdr ${n.llAddr} dev ${n.device} nud permanent`,
  );
}

/**
 * Both families in one command: a plain `route show` lists IPv4 only, `-6`
 * cannot be given per `-batch` line, and a `root ::/0` filter still dumps
 * IPv4. Every table's routes come, and toRoutes keeps the main table's.
 */
export const LIST_ROUTES_COMMAND = 'route show table all';

/** An address as listed, with the scope the kernel gave it ("global", "link", "host"). */
type ListedAddress = IPAddress & { scope: string };

function addressesOf(link: IpLink): ListedAddress[] {
  const out: ListedAddress[] = [];
  for (const a of link.addr_info ?? []) {
    if ((a.family !== 'inet' && a.family !== 'inet6') || a.local === undefined) continue;
    out.push({
      family: a.family === 'inet6' ? IPFamily.IP_FAMILY_V6 : IPFamily.IP_FAMILY_V4,
      address: a.local,
      prefixLength: a.prefixlen ?? 0,
      scope: a.scope ?? 'global',
    });
  }
  return out;
}

/** A link of `ip -j addr show` as the Interface message lists it. */
export function toInterface(link: IpLink): Interface {
  return {
    name: link.ifname,
    hwAddr: link.address ?? '',
    mtu: link.mtu ?? 0,
    ipAddresses: addressesOf(link).map(({ family, address, prefixLength }) => ({
      family,
      address,
      prefixLength,
    })),
  };
}

/**
 * The family of a route as `ip -j` prints it, which does not say: from its
 * addresses, else from "pref" (the router preference iproute2 prints for
 * IPv6 routes only, from the RTA_PREF the kernel sends with each).
 */
function familyOf(r: IpRoute): IPFamily {
  const v6 = [r.dst, r.gateway, r.prefsrc].some((a) => a?.includes(':')) || r.pref !== undefined;
  return v6 ? IPFamily.IP_FAMILY_V6 : IPFamily.IP_FAMILY_V4;
}

/**
 * The main table's unicast routes of `ip -j route show table all` as Route
 * messages; what the message cannot say (local, broadcast, multicast,
 * blackhole, ... routes, other tables) is left out. A host route ip prints
 * without a length ("10.0.0.7") gets its full one, so dest is always
 * "default" or a prefix; no scope in ip's output means universe, listed as
 * "global".
 */
export function toRoutes(listed: readonly IpRoute[]): Route[] {
  const out: Route[] = [];
  for (const r of listed) {
    if ((r.type !== undefined && r.type !== 'unicast') || (r.table ?? 'main') !== 'main') continue;
    const family = familyOf(r);
    let dest = r.dst;
    if (dest !== 'default' && !dest.includes('/')) dest += isV6(family) ? '/128' : '/32';
    out.push({
      family,
      dest,
      gateway: r.gateway ?? '',
      device: r.dev ?? '',
      source: r.prefsrc ?? '',
      scope: r.scope ?? 'global',
      metric: r.metric ?? 0,
    });
  }
  return out;
}

/**
 * The JSON values of an `ip -j -batch -` run: each `show` prints one array,
 * one after the other (newline-separated in iproute2 6.1, but nothing
 * promises it), so this splits on depth rather than on lines.
 */
export function splitJsonValues(text: string): unknown[] {
  const out: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '[' || c === '{') {
      if (depth++ === 0) start = i;
    } else if (c === ']' || c === '}') {
      if (--depth === 0) out.push(JSON.parse(text.slice(start, i + 1)));
    }
  }
  if (depth !== 0) throw new Error(`truncated JSON from ip: ${JSON.stringify(text.slice(-200))}`);
  return out;
}
