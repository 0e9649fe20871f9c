import { TAP_SUFFIX, type IpLink } from './host-view.js';
import { iproute, ipJson } from './iproute.js';

/**
 * Kata's tcfilter model: a tap beside the engine's link (a veth, usually),
 * and every frame arriving on either one sent out of the other by an ingress
 * qdisc with a match-all u32 filter and a mirred redirect. The link keeps its
 * addresses (nothing on the host answers for them: ingress runs before the
 * stack), so it works with any CNI plugin and leaves the engine's view as it
 * configured it. The tap is made persistent here so QEMU opens it by name
 * without privileges of its own, and it is sized to the link's MTU.
 */
export async function connectTap(link: string, tap: string, mtu: number): Promise<void> {
  await iproute('ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap', 'vnet_hdr']);
  try {
    if (mtu > 0) await iproute('ip', ['link', 'set', 'dev', tap, 'mtu', String(mtu)]);
    await iproute('ip', ['link', 'set', 'dev', tap, 'up']);
    await redirect(tap, link);
    await redirect(link, tap);
  } catch (err) {
    await disconnectTap(link, tap);
    throw err;
  }
}

/**
 * Undoes connectTap: the tap (its own ingress qdisc goes with it) and the
 * link's ingress qdisc. Quiet about what is already gone.
 */
export async function disconnectTap(link: string, tap: string): Promise<void> {
  await iproute('tc', ['qdisc', 'del', 'dev', link, 'ingress']).catch(() => undefined);
  await iproute('ip', ['link', 'del', 'dev', tap]).catch(() => undefined);
}

async function redirect(from: string, to: string): Promise<void> {
  await iproute('tc', ['qdisc', 'add', 'dev', from, 'ingress']);
  await iproute('tc', [
    'filter',
    'add',
    'dev',
    from,
    'parent',
    'ffff:',
    'protocol',
    'all',
    'u32',
    'match',
    'u8',
    '0',
    '0',
    'action',
    'mirred',
    'egress',
    'redirect',
    'dev',
    to,
  ]);
}

interface TcFilter {
  options?: { actions?: { kind?: string; to_dev?: string }[] };
}

/**
 * Removes whatever kapsel made in a network namespace, known or not: every
 * `tap*_kapsel` and the ingress qdisc of every link whose filter redirects to
 * one. The sandbox process runs it when it ends (`enter` empty); `delete`
 * runs it through nsenter in an engine's namespace when the sandbox process
 * was killed before it could.
 */
export async function scrubNamespace(enter: readonly string[] = []): Promise<void> {
  const links = await ipJson<IpLink>(['link', 'show'], enter);
  for (const l of links) {
    if (l.ifname.endsWith(TAP_SUFFIX)) continue;
    const filters = await ipJson<TcFilter>(
      ['filter', 'show', 'dev', l.ifname, 'ingress'],
      enter,
      'tc',
    ).catch(() => []);
    const ours = filters.some((f) =>
      (f.options?.actions ?? []).some(
        (a) => a.kind === 'mirred' && (a.to_dev ?? '').endsWith(TAP_SUFFIX),
      ),
    );
    if (ours)
      await iproute('tc', ['qdisc', 'del', 'dev', l.ifname, 'ingress'], enter).catch(
        () => undefined,
      );
  }
  for (const l of links) {
    if (l.ifname.endsWith(TAP_SUFFIX)) {
      await iproute('ip', ['link', 'del', 'dev', l.ifname], enter).catch(() => undefined);
    }
  }
}
