import { isIPv4, isIPv6 } from 'node:net';
import {
  IPFamily,
  type ARPNeighbor,
  type IPAddress,
  type Interface,
  type Route,
} from '../../../proto/generated/agent.js';
import { invalidArgument } from '../errors.js';

/**
 * Checks of the network messages before any `ip` runs, each naming the
 * proto field it refuses (`interface.ip_addresses[1].prefix_length: ...`),
 * so the host sees its own mistake rather than an RTNETLINK error.
 */

/** Lower-case "aa:bb:cc:dd:ee:ff", as `ip -j link` prints a MAC. */
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/**
 * The kernel's dev_valid_name (net/core/dev.c): 1..15 bytes (IFNAMSIZ 16
 * with the NUL), not "." or "..", no '/', ':' or whitespace. Quotes, '#' and
 * '\' are refused too (`ip -batch` reads them as quoting and comments), and
 * '%' (the kernel reads "eth%d" as a pattern when a link changes namespace).
 */
const IFNAME = /^[^\s/:"'#%\\]{1,15}$/;

/** iproute2's scope names (rtnl_rtscope_a2n) that a route may carry. */
const SCOPES = new Set(['', 'global', 'universe', 'site', 'link', 'host']);

const FAMILY_NAME: Record<IPFamily.IP_FAMILY_V4 | IPFamily.IP_FAMILY_V6, string> = {
  [IPFamily.IP_FAMILY_V4]: 'IPv4',
  [IPFamily.IP_FAMILY_V6]: 'IPv6',
};

function familyName(field: string, family: IPFamily): string {
  if (family !== IPFamily.IP_FAMILY_V4 && family !== IPFamily.IP_FAMILY_V6) {
    throw invalidArgument(`${field}: unknown IP family ${family}`);
  }
  return FAMILY_NAME[family];
}

function maxPrefix(family: IPFamily): number {
  return family === IPFamily.IP_FAMILY_V6 ? 128 : 32;
}

/** An address of that family, without a prefix or an IPv6 zone. */
function checkAddress(field: string, address: string, family: IPFamily): void {
  const name = familyName(field, family);
  const ok = family === IPFamily.IP_FAMILY_V6 ? isIPv6(address) : isIPv4(address);
  if (!ok || address.includes('%')) {
    throw invalidArgument(`${field}: not an ${name} address: ${JSON.stringify(address)}`);
  }
}

export function checkMac(field: string, mac: string): void {
  // All zeroes is lo's (and no NIC's): matching it would move lo.
  if (!MAC.test(mac) || mac === '00:00:00:00:00:00') {
    throw invalidArgument(
      `${field}: not a MAC address in the form aa:bb:cc:dd:ee:ff (lower-case): ${JSON.stringify(mac)}`,
    );
  }
}

export function checkIfName(field: string, name: string): void {
  if (!IFNAME.test(name) || name === '.' || name === '..') {
    throw invalidArgument(
      `${field}: not a network interface name (1 to 15 bytes, no whitespace, '/', ':', '%', quotes, '#' or '\\'): ${JSON.stringify(name)}`,
    );
  }
}

function checkIpAddress(field: string, a: IPAddress): void {
  checkAddress(`${field}.address`, a.address, a.family);
  const max = maxPrefix(a.family);
  if (!Number.isInteger(a.prefixLength) || a.prefixLength < 0 || a.prefixLength > max) {
    throw invalidArgument(
      `${field}.prefix_length: must be 0..${max} for ${familyName(field, a.family)}, got ${a.prefixLength}`,
    );
  }
}

/** UpdateInterface's interface; the field is "interface". */
export function checkInterface(iface: Interface | undefined): Interface {
  if (iface === undefined) throw invalidArgument('interface: missing');
  checkIfName('interface.name', iface.name);
  checkMac('interface.hw_addr', iface.hwAddr);
  // The kernel refuses out-of-range MTUs per device (ETH_MIN_MTU 68 for
  // virtio-net); only what cannot be an MTU at all is refused here.
  if (!Number.isInteger(iface.mtu) || iface.mtu < 0 || iface.mtu > 65535) {
    throw invalidArgument(`interface.mtu: must be 0 (keep) or up to 65535 bytes, got ${iface.mtu}`);
  }
  iface.ipAddresses.forEach((a, i) => {
    checkIpAddress(`interface.ip_addresses[${i}]`, a);
  });
  return iface;
}

/**
 * A route's destination: "default" or an address with an optional prefix
 * length ("10.1.0.0/16", "10.1.0.7" meaning /32), of the route's family.
 */
function checkDest(field: string, dest: string, family: IPFamily): void {
  if (dest === 'default') return;
  const slash = dest.indexOf('/');
  const address = slash === -1 ? dest : dest.slice(0, slash);
  checkAddress(field, address, family);
  if (slash === -1) return;
  const len = dest.slice(slash + 1);
  const max = maxPrefix(family);
  if (!/^\d{1,3}$/.test(len) || Number(len) > max) {
    throw invalidArgument(
      `${field}: prefix length must be 0..${max} for ${familyName(field, family)}, got ${JSON.stringify(len)}`,
    );
  }
}

export function checkRoutes(routes: readonly Route[]): void {
  routes.forEach((r, i) => {
    const f = `routes[${i}]`;
    familyName(`${f}.family`, r.family);
    if (r.dest === '') throw invalidArgument(`${f}.dest: missing ("default" or a prefix)`);
    checkDest(`${f}.dest`, r.dest, r.family);
    if (r.gateway !== '') checkAddress(`${f}.gateway`, r.gateway, r.family);
    if (r.source !== '') checkAddress(`${f}.source`, r.source, r.family);
    if (r.device !== '') checkIfName(`${f}.device`, r.device);
    if (r.device === '' && r.gateway === '') {
      throw invalidArgument(`${f}: needs a device or a gateway`);
    }
    if (!SCOPES.has(r.scope)) {
      throw invalidArgument(
        `${f}.scope: must be "", "global", "site", "link" or "host", got ${JSON.stringify(r.scope)}`,
      );
    }
  });
}

export function checkNeighbors(neighbors: readonly ARPNeighbor[]): void {
  neighbors.forEach((n, i) => {
    const f = `neighbors[${i}]`;
    checkAddress(`${f}.to_ip`, n.toIp, n.family);
    checkIfName(`${f}.device`, n.device);
    checkMac(`${f}.ll_addr`, n.llAddr);
  });
}
