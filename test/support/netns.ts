import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

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

  /** The links in it (`ip -j link show`). */
  links(): { ifname: string; address: string }[] {
    return JSON.parse(this.ip(['-j', 'link', 'show'])) as { ifname: string; address: string }[];
  }

  /** Runs a program in the namespace to the end; its stdout. */
  run(args: string[], timeoutMs = 30_000): string {
    return execFileSync('nsenter', [`--net=${this.path}`, '--', ...args], {
      encoding: 'utf8',
      timeout: timeoutMs,
    });
  }

  /**
   * GETs `url` with curl from inside the namespace, retrying while the server
   * starts (up to ~30 s); the body, or '' when it never answered.
   */
  async get(url: string): Promise<string> {
    for (let i = 0; i < 100; i++) {
      try {
        return this.run(['curl', '-sf', '--max-time', '3', url]);
      } catch {
        await new Promise((res) => setTimeout(res, 300));
      }
    }
    return '';
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
