// The pure half of the network RPCs: validation, messages into iproute2
// batch lines, and `ip -j` output (captured from iproute2 6.1) into messages.
import { describe, expect, it } from 'vitest';
import { IPFamily, type Interface, type Route } from '../../proto/generated/agent.js';
import { AgentError } from '../../agent/src/errors.js';
import {
  interfaceCommands,
  neighborCommands,
  routeCommands,
  splitJsonValues,
  toInterface,
  toRoutes,
  type IpLink,
  type IpRoute,
} from '../../agent/src/network/iproute.js';
import { batchFailure, IpFailure } from '../../agent/src/network/ip.js';
import { checkInterface, checkNeighbors, checkRoutes } from '../../agent/src/network/validate.js';

const V4 = IPFamily.IP_FAMILY_V4;
const V6 = IPFamily.IP_FAMILY_V6;

const eth0 = (over: Partial<Interface> = {}): Interface => ({
  name: 'eth0',
  hwAddr: '02:42:ac:11:00:02',
  mtu: 1500,
  ipAddresses: [
    { family: V4, address: '172.17.0.2', prefixLength: 16 },
    { family: V6, address: 'fd00::2', prefixLength: 64 },
  ],
  ...over,
});

const route = (over: Partial<Route>): Route => ({
  family: V4,
  dest: 'default',
  gateway: '',
  device: 'eth0',
  source: '',
  scope: '',
  metric: 0,
  ...over,
});

function refusal(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).kind).toBe('invalid-argument');
    return (err as Error).message;
  }
  throw new Error('not refused');
}

describe('checkInterface', () => {
  it('takes a well-formed interface', () => {
    expect(checkInterface(eth0())).toEqual(eth0());
  });

  it.each([
    { name: 'no interface', iface: undefined, errorContains: 'interface: missing' },
    { name: 'an empty name', iface: eth0({ name: '' }), errorContains: 'interface.name:' },
    {
      name: 'a 16-byte name',
      iface: eth0({ name: 'a234567890123456' }),
      errorContains: 'interface.name: not a network interface name',
    },
    { name: 'a name with /', iface: eth0({ name: 'eth/0' }), errorContains: 'interface.name' },
    { name: 'a pattern name', iface: eth0({ name: 'eth%d' }), errorContains: 'interface.name' },
    { name: 'the name ..', iface: eth0({ name: '..' }), errorContains: 'interface.name' },
    {
      name: 'a short MAC',
      iface: eth0({ hwAddr: '02:42:ac:11:00' }),
      errorContains: 'interface.hw_addr: not a MAC address',
    },
    {
      name: 'an upper-case MAC',
      iface: eth0({ hwAddr: '02:42:AC:11:00:02' }),
      errorContains: 'interface.hw_addr',
    },
    {
      name: "lo's MAC",
      iface: eth0({ hwAddr: '00:00:00:00:00:00' }),
      errorContains: 'interface.hw_addr',
    },
    { name: 'a huge MTU', iface: eth0({ mtu: 70000 }), errorContains: 'interface.mtu' },
    {
      name: 'an IPv4 prefix of 40',
      iface: eth0({
        ipAddresses: [
          { family: V6, address: 'fd00::2', prefixLength: 64 },
          { family: V4, address: '10.0.0.2', prefixLength: 40 },
        ],
      }),
      errorContains: 'interface.ip_addresses[1].prefix_length: must be 0..32 for IPv4, got 40',
    },
    {
      name: 'an IPv6 prefix of 129',
      iface: eth0({ ipAddresses: [{ family: V6, address: 'fd00::2', prefixLength: 129 }] }),
      errorContains: 'interface.ip_addresses[0].prefix_length: must be 0..128 for IPv6, got 129',
    },
    {
      name: 'an IPv6 address said to be IPv4',
      iface: eth0({ ipAddresses: [{ family: V4, address: 'fd00::2', prefixLength: 64 }] }),
      errorContains: 'interface.ip_addresses[0].address: not an IPv4 address: "fd00::2"',
    },
    {
      name: 'an address with its prefix',
      iface: eth0({ ipAddresses: [{ family: V4, address: '10.0.0.2/24', prefixLength: 24 }] }),
      errorContains: 'interface.ip_addresses[0].address: not an IPv4 address',
    },
    {
      name: 'an IPv6 zone',
      iface: eth0({ ipAddresses: [{ family: V6, address: 'fe80::1%eth0', prefixLength: 64 }] }),
      errorContains: 'interface.ip_addresses[0].address',
    },
    {
      name: 'an unknown family',
      iface: eth0({
        ipAddresses: [{ family: IPFamily.UNRECOGNIZED, address: '10.0.0.2', prefixLength: 8 }],
      }),
      errorContains: 'unknown IP family -1',
    },
  ])('refuses $name', ({ iface, errorContains }) => {
    expect(refusal(() => checkInterface(iface))).toContain(errorContains);
  });
});

describe('checkRoutes and checkNeighbors', () => {
  it('take well-formed ones', () => {
    expect(() => {
      checkRoutes([
        route({ gateway: '172.17.0.1' }),
        route({ family: V6, dest: 'default', gateway: 'fd00::1', device: '' }),
        route({ dest: '10.1.0.0/16', scope: 'link', source: '172.17.0.2', metric: 5 }),
        route({ dest: '10.1.0.7' }),
      ]);
      checkNeighbors([
        { family: V4, toIp: '172.17.0.1', device: 'eth0', llAddr: '02:42:ac:11:00:01' },
      ]);
    }).not.toThrow();
  });

  it.each([
    { route: route({ dest: '' }), errorContains: 'routes[0].dest: missing' },
    {
      route: route({ dest: '10.0.0.0/33' }),
      errorContains: 'routes[0].dest: prefix length must be 0..32',
    },
    { route: route({ dest: 'fd00::/64' }), errorContains: 'routes[0].dest: not an IPv4 address' },
    {
      route: route({ gateway: 'fd00::1' }),
      errorContains: 'routes[0].gateway: not an IPv4 address',
    },
    { route: route({ source: 'x' }), errorContains: 'routes[0].source' },
    { route: route({ device: '' }), errorContains: 'routes[0]: needs a device or a gateway' },
    { route: route({ scope: 'galaxy' }), errorContains: 'routes[0].scope' },
    { route: route({ device: 'eth 0' }), errorContains: 'routes[0].device' },
  ])('refuses $errorContains', ({ route: r, errorContains }) => {
    expect(
      refusal(() => {
        checkRoutes([r]);
      }),
    ).toContain(errorContains);
  });

  it('refuses a bad neighbour, naming the field', () => {
    expect(
      refusal(() => {
        checkNeighbors([{ family: V4, toIp: '10.0.0.1', device: 'eth0', llAddr: 'nope' }]);
      }),
    ).toContain('neighbors[0].ll_addr');
    expect(
      refusal(() => {
        checkNeighbors([
          { family: V6, toIp: '10.0.0.1', device: 'eth0', llAddr: '02:00:00:00:00:01' },
        ]);
      }),
    ).toContain('neighbors[0].to_ip: not an IPv6 address');
  });
});

describe('iproute2 command lines', () => {
  const justMoved: IpLink = { ifindex: 3, ifname: 'eth0', mtu: 1500, addr_info: [] };

  it('configures a NIC just moved in: MTU, addresses (IPv6 without DAD), up, then shows it', () => {
    expect(interfaceCommands(justMoved, eth0({ mtu: 1450 }), true)).toEqual([
      'link set dev eth0 mtu 1450',
      'addr replace 172.17.0.2/16 dev eth0',
      'addr replace fd00::2/64 dev eth0 nodad',
      'link set dev eth0 up',
      'addr show dev eth0',
    ]);
  });

  it('changes nothing for the same message again but keeps it up', () => {
    const configured: IpLink = {
      ifindex: 3,
      ifname: 'eth0',
      mtu: 1500,
      addr_info: [
        { family: 'inet', local: '172.17.0.2', prefixlen: 16, scope: 'global' },
        { family: 'inet6', local: 'fd00::2', prefixlen: 64, scope: 'global' },
        { family: 'inet6', local: 'fe80::42:acff:fe11:2', prefixlen: 64, scope: 'link' },
      ],
    };
    expect(interfaceCommands(configured, eth0(), false)).toEqual([
      'addr replace 172.17.0.2/16 dev eth0',
      'addr replace fd00::2/64 dev eth0 nodad',
      'link set dev eth0 up',
      'addr show dev eth0',
    ]);
  });

  it('renames (down first), adds before it removes, and keeps the link-local address', () => {
    const other: IpLink = {
      ifindex: 3,
      ifname: 'net1',
      mtu: 1500,
      addr_info: [
        { family: 'inet', local: '10.0.0.5', prefixlen: 8, scope: 'global' },
        { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' },
      ],
    };
    expect(
      interfaceCommands(
        other,
        eth0({ mtu: 0, ipAddresses: [{ family: V4, address: '10.0.0.6', prefixLength: 8 }] }),
        false,
      ),
    ).toEqual([
      'link set dev net1 down',
      'link set dev net1 name eth0',
      'addr replace 10.0.0.6/8 dev eth0',
      'addr del 10.0.0.5/8 dev eth0',
      'link set dev eth0 up',
      'addr show dev eth0',
    ]);
  });

  it('puts on-link routes before gateway routes, and names the family of a default route', () => {
    expect(
      routeCommands([
        route({ gateway: '172.17.0.1' }),
        route({ family: V6, gateway: 'fd00::1', metric: 1024 }),
        route({ family: V6, dest: 'default', device: 'eth0' }),
        route({ dest: '172.17.0.0/16', scope: 'link', source: '172.17.0.2' }),
      ]),
    ).toEqual([
      'route replace ::/0 dev eth0',
      'route replace 172.17.0.0/16 dev eth0 src 172.17.0.2 scope link',
      'route replace 0.0.0.0/0 via 172.17.0.1 dev eth0',
      'route replace ::/0 via fd00::1 dev eth0 metric 1024',
    ]);
  });

  it('adds permanent neighbours', () => {
    expect(
      neighborCommands([
        { family: V4, toIp: '172.17.0.1', device: 'eth0', llAddr: '02:42:ac:11:00:01' },
      ]),
    ).toEqual(['neigh replace 172.17.0.1 lladdr 02:42:ac:11:00:01 dev eth0 nud permanent']);
  });
});

describe('ip -j output', () => {
  // iproute2 6.1, `ip -j -batch -` with `addr show` then `route show table all`.
  const batchOutput =
    '[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"::1","prefixlen":128,"scope":"host","valid_life_time":4294967295,"preferred_life_time":4294967295}]},' +
    '{"ifindex":3,"link_index":2,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP"],"mtu":1400,"address":"c6:b1:d4:29:c2:89","addr_info":[{"family":"inet","local":"10.9.0.2","prefixlen":24,"scope":"global","label":"eth0"},{"family":"inet6","local":"fd00::2","prefixlen":64,"scope":"global","nodad":true}]}]\n' +
    '[{"dst":"default","gateway":"10.9.0.1","dev":"eth0","table":"main","flags":[]},' +
    '{"dst":"10.9.0.0/24","dev":"eth0","table":"main","protocol":"kernel","scope":"link","prefsrc":"10.9.0.2","flags":[]},' +
    '{"dst":"10.9.0.7","dev":"eth0","table":"main","scope":"link","flags":[]},' +
    '{"type":"local","dst":"10.9.0.2","dev":"eth0","table":"local","protocol":"kernel","scope":"host","prefsrc":"10.9.0.2","flags":[]},' +
    '{"type":"broadcast","dst":"10.9.0.255","dev":"eth0","table":"local","protocol":"kernel","scope":"link","prefsrc":"10.9.0.2","flags":[]},' +
    '{"dst":"fd00::/64","dev":"eth0","table":"main","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},' +
    '{"dst":"default","dev":"eth0","table":"main","metric":1024,"flags":[],"pref":"medium"},' +
    '{"type":"multicast","dst":"ff00::/8","dev":"eth0","table":"local","protocol":"kernel","metric":256,"flags":[],"pref":"medium"}]\n';

  it('splits the JSON values of a batch run, brackets in strings included', () => {
    expect(splitJsonValues('[{"a":"]["}][]\n[1]')).toEqual([[{ a: '][' }], [], [1]]);
    expect(splitJsonValues('')).toEqual([]);
    expect(() => splitJsonValues('[{"a":1}')).toThrow(/truncated/);
  });

  it('lists every interface with every address', () => {
    const [links] = splitJsonValues(batchOutput) as [IpLink[]];
    expect(links.map(toInterface)).toEqual([
      {
        name: 'lo',
        hwAddr: '00:00:00:00:00:00',
        mtu: 65536,
        ipAddresses: [
          { family: V4, address: '127.0.0.1', prefixLength: 8 },
          { family: V6, address: '::1', prefixLength: 128 },
        ],
      },
      {
        name: 'eth0',
        hwAddr: 'c6:b1:d4:29:c2:89',
        mtu: 1400,
        ipAddresses: [
          { family: V4, address: '10.9.0.2', prefixLength: 24 },
          { family: V6, address: 'fd00::2', prefixLength: 64 },
        ],
      },
    ]);
  });

  it("lists the main table's unicast routes of both families", () => {
    const [, routes] = splitJsonValues(batchOutput) as [unknown, IpRoute[]];
    expect(toRoutes(routes)).toEqual([
      route({ gateway: '10.9.0.1', scope: 'global' }),
      route({ dest: '10.9.0.0/24', scope: 'link', source: '10.9.0.2' }),
      route({ dest: '10.9.0.7/32', scope: 'link' }),
      route({ family: V6, dest: 'fd00::/64', scope: 'global', metric: 256 }),
      // A device-only IPv6 default route: only "pref" tells its family.
      route({ family: V6, dest: 'default', scope: 'global', metric: 1024 }),
    ]);
  });
});

describe('batchFailure', () => {
  it('names the line that failed and what ip said', () => {
    const lines = ['route replace 0.0.0.0/0 dev eth0', 'route replace 0.0.0.0/0 via 192.0.2.1'];
    const err = batchFailure(
      new IpFailure(
        ['nsenter', '--net=/proc/9/ns/net', 'ip', '-j', '-batch', '-'],
        'Error: Nexthop has invalid gateway.\nCommand failed -:2\n',
        1,
      ),
      lines,
      '(in the network namespace of container c1)',
    );
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).kind).toBe('failed-precondition');
    expect((err as Error).message).toBe(
      'ip route replace 0.0.0.0/0 via 192.0.2.1 (in the network namespace of container c1): Error: Nexthop has invalid gateway.',
    );
  });
});
