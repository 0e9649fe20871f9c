import { describe, expect, it } from 'vitest';
import { IPFamily } from '../../proto/generated/agent.js';
import {
  interfacesOf,
  neighborsOf,
  routesOf,
  type IpLink,
  type IpRoute,
} from '../../runtime/src/sandbox/network/host-view.js';

const V4 = IPFamily.IP_FAMILY_V4;
const V6 = IPFamily.IP_FAMILY_V6;

// What `ip -j -d addr show` printed in a namespace Docker configured, with
// one of our taps already beside the veth (trimmed to the fields read).
const LINKS: IpLink[] = [
  {
    ifname: 'lo',
    mtu: 65536,
    link_type: 'loopback',
    address: '00:00:00:00:00:00',
    addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8, scope: 'host' }],
  },
  {
    ifname: 'eth0',
    mtu: 1500,
    link_type: 'ether',
    address: '02:42:AC:11:00:02',
    linkinfo: { info_kind: 'veth' },
    addr_info: [
      { family: 'inet', local: '172.17.0.2', prefixlen: 16, scope: 'global' },
      { family: 'inet6', local: 'fd00::2', prefixlen: 64, scope: 'global' },
      { family: 'inet6', local: 'fe80::42:acff:fe11:2', prefixlen: 64, scope: 'link' },
    ],
  },
  {
    ifname: 'tap0_kapsel',
    mtu: 1500,
    link_type: 'ether',
    address: 'ee:9f:a5:f5:a6:32',
    linkinfo: { info_kind: 'tun' },
  },
  {
    ifname: 'br0',
    mtu: 1500,
    link_type: 'ether',
    address: '02:00:00:00:00:09',
    linkinfo: { info_kind: 'bridge' },
  },
];

describe('the host namespace as the guest is to mirror it', () => {
  it('takes the Ethernet links but loopback, our taps and bridges; drops link-local addresses', () => {
    expect(interfacesOf(LINKS)).toEqual([
      {
        name: 'eth0',
        hwAddr: '02:42:ac:11:00:02',
        mtu: 1500,
        ipAddresses: [
          { family: V4, address: '172.17.0.2', prefixLength: 16 },
          { family: V6, address: 'fd00::2', prefixLength: 64 },
        ],
      },
    ]);
  });

  it("takes the main table's routes on mirrored links but the kernel's own, link-local and multicast; on-link routes first", () => {
    const v4: IpRoute[] = [
      { dst: 'default', gateway: '172.17.0.1', dev: 'eth0' },
      {
        dst: '172.17.0.0/16',
        dev: 'eth0',
        protocol: 'kernel',
        scope: 'link',
        prefsrc: '172.17.0.2',
      },
      { dst: '10.9.0.0/24', dev: 'eth0', scope: 'link', metric: 7 },
      { dst: '192.0.2.0/24', dev: 'other0' },
      { dst: '198.51.100.0/24', dev: 'eth0', type: 'blackhole' },
    ];
    const v6: IpRoute[] = [
      { dst: 'fd00::/64', dev: 'eth0', protocol: 'kernel', metric: 256 },
      { dst: 'fe80::/64', dev: 'eth0', protocol: 'boot', metric: 256 },
      { dst: 'ff00::/8', dev: 'eth0', metric: 256 },
      { dst: 'default', gateway: 'fd00::1', dev: 'eth0', metric: 1024 },
    ];
    expect(routesOf(v4, v6, new Set(['eth0']))).toEqual([
      {
        family: V4,
        dest: '10.9.0.0/24',
        gateway: '',
        device: 'eth0',
        source: '',
        scope: 'link',
        metric: 7,
      },
      {
        family: V4,
        dest: 'default',
        gateway: '172.17.0.1',
        device: 'eth0',
        source: '',
        scope: '',
        metric: 0,
      },
      // 1024 is the kernel's default metric for IPv6: sent as "default".
      {
        family: V6,
        dest: 'default',
        gateway: 'fd00::1',
        device: 'eth0',
        source: '',
        scope: '',
        metric: 0,
      },
    ]);
  });

  it('takes permanent neighbours on mirrored links, MACs lower-case', () => {
    expect(
      neighborsOf(
        [
          { dst: '172.17.0.9', dev: 'eth0', lladdr: '02:42:AC:11:00:09' },
          { dst: 'fd00::9', dev: 'eth0', lladdr: '02:42:ac:11:00:0a' },
          { dst: '192.0.2.9', dev: 'other0', lladdr: '02:00:00:00:00:01' },
          { dst: '172.17.0.10', dev: 'eth0' },
        ],
        new Set(['eth0']),
      ),
    ).toEqual([
      { family: V4, toIp: '172.17.0.9', device: 'eth0', llAddr: '02:42:ac:11:00:09' },
      { family: V6, toIp: 'fd00::9', device: 'eth0', llAddr: '02:42:ac:11:00:0a' },
    ]);
  });
});
