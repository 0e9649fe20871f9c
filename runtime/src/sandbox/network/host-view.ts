import {
  IPFamily,
  type ARPNeighbor,
  type Interface,
  type Route,
} from '../../../../proto/generated/agent.js';

/**
 * What a container's host network namespace holds, as the agent is to
 * recreate it in the guest. Kata's tcfilter model: the engine (Docker's
 * libnetwork, CNI, Podman) configured this namespace; kapsel copies it.
 */
export interface HostNetwork {
  /** One per link to hand to the guest, keyed by its host name. */
  interfaces: Interface[];
  routes: Route[];
  neighbors: ARPNeighbor[];
}

/** Tap devices kapsel makes are named `tap<N>_kapsel` (Kata: `tap<N>_kata`). */
export const TAP_SUFFIX = '_kapsel';

/** Link kinds the tcfilter model can mirror (Kata: veth, macvlan, ipvlan, physical). */
const MIRRORED_KINDS = new Set(['veth', 'macvlan', 'ipvlan', 'macvtap', '']);

interface IpAddrInfo {
  family?: string;
  local?: string;
  prefixlen?: number;
  scope?: string;
}

/** One element of `ip -j -d addr show` (iproute2's JSON, only the fields read). */
export interface IpLink {
  ifname: string;
  mtu?: number;
  link_type?: string;
  address?: string;
  flags?: string[];
  linkinfo?: { info_kind?: string };
  addr_info?: IpAddrInfo[];
}

/** One element of `ip -j route show` / `ip -j -6 route show`. */
export interface IpRoute {
  dst?: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
  metric?: number;
  type?: string;
}

/** One element of `ip -j neigh show nud permanent`. */
export interface IpNeighbor {
  dst?: string;
  dev?: string;
  lladdr?: string;
}

/**
 * The links to mirror: Ethernet links that are not loopback and not our own
 * taps. Link-local IPv6 addresses are left out: the guest NIC has the same
 * MAC, so its kernel derives the same fe80:: address itself.
 */
export function interfacesOf(links: readonly IpLink[]): Interface[] {
  return links
    .filter(
      (l) =>
        l.link_type === 'ether' &&
        !l.ifname.endsWith(TAP_SUFFIX) &&
        MIRRORED_KINDS.has(l.linkinfo?.info_kind ?? '') &&
        l.address !== undefined,
    )
    .map((l) => ({
      name: l.ifname,
      hwAddr: (l.address ?? '').toLowerCase(),
      mtu: l.mtu ?? 0,
      ipAddresses: (l.addr_info ?? [])
        .filter(
          (a) =>
            (a.family === 'inet' || a.family === 'inet6') &&
            a.scope !== 'link' &&
            a.local !== undefined,
        )
        .map((a) => ({
          family: a.family === 'inet6' ? IPFamily.IP_FAMILY_V6 : IPFamily.IP_FAMILY_V4,
          address: a.local ?? '',
          prefixLength: a.prefixlen ?? 0,
        })),
    }));
}

/**
 * Routes the agent must add: those of the main table on mirrored links,
 * except what the kernel makes by itself when an address is added
 * (`proto kernel`) and IPv6 link-local and multicast prefixes.
 */
export function routesOf(
  v4: readonly IpRoute[],
  v6: readonly IpRoute[],
  devices: ReadonlySet<string>,
): Route[] {
  const pick = (family: IPFamily, r: IpRoute): Route | undefined => {
    if (r.protocol === 'kernel' || r.dev === undefined || !devices.has(r.dev)) return undefined;
    if ((r.type ?? 'unicast') !== 'unicast') return undefined;
    const dest = r.dst ?? 'default';
    if (family === IPFamily.IP_FAMILY_V6 && /^(fe80|ff[0-9a-f]{2}):/i.test(dest)) return undefined;
    return {
      family,
      dest,
      gateway: r.gateway ?? '',
      device: r.dev,
      source: r.prefsrc ?? '',
      scope: r.scope ?? '',
      metric: family === IPFamily.IP_FAMILY_V6 && r.metric === 1024 ? 0 : (r.metric ?? 0),
    };
  };
  const out: Route[] = [];
  for (const r of v4) {
    const x = pick(IPFamily.IP_FAMILY_V4, r);
    if (x) out.push(x);
  }
  for (const r of v6) {
    const x = pick(IPFamily.IP_FAMILY_V6, r);
    if (x) out.push(x);
  }
  // Routes on the link first: a gateway must be reachable when its route is added.
  return out.sort((a, b) => Number(a.gateway !== '') - Number(b.gateway !== ''));
}

/** Permanent neighbour entries on mirrored links (engines rarely set any). */
export function neighborsOf(
  entries: readonly IpNeighbor[],
  devices: ReadonlySet<string>,
): ARPNeighbor[] {
  return entries
    .filter((n) => n.dst !== undefined && n.lladdr !== undefined && devices.has(n.dev ?? ''))
    .map((n) => ({
      family: (n.dst ?? '').includes(':') ? IPFamily.IP_FAMILY_V6 : IPFamily.IP_FAMILY_V4,
      toIp: n.dst ?? '',
      device: n.dev ?? '',
      llAddr: (n.lladdr ?? '').toLowerCase(),
    }));
}
