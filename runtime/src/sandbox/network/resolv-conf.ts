import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import type { Spec } from '../../../../oci/spec.js';
import { isLoopbackV4 } from './dns-relay.js';

/**
 * The first IPv4 loopback nameserver (127.0.0.0/8) of a resolv.conf, as the
 * resolver reads it (resolv.conf(5): `nameserver ADDRESS`, comments after #
 * or ;). Docker writes `nameserver 127.0.0.11` for a container on a
 * user-defined network: its embedded DNS server, in the container's host
 * network namespace (libnetwork resolver.go).
 */
export function loopbackNameserverOf(text: string): string | undefined {
  for (const raw of text.split('\n')) {
    const [key, value] = raw
      .replace(/[#;].*$/, '')
      .trim()
      .split(/\s+/);
    if (key === 'nameserver' && value !== undefined && isLoopbackV4(value)) return value;
  }
  return undefined;
}

/**
 * The loopback nameserver of the resolv.conf the engine bind-mounts into the
 * container (spec.mounts, destination /etc/resolv.conf; its host source),
 * which the guest then needs relayed to the host (network/dns-relay.ts).
 * undefined when there is no such mount, no such nameserver, or the file
 * cannot be read. The file itself is never changed.
 */
export async function loopbackNameserver(
  spec: Spec,
  bundleDir: string,
): Promise<string | undefined> {
  const mount = spec.mounts?.findLast(
    (m) => m.destination.replace(/\/+$/, '') === '/etc/resolv.conf',
  );
  if (mount?.source === undefined) return undefined;
  const source = isAbsolute(mount.source) ? mount.source : resolve(bundleDir, mount.source);
  try {
    return loopbackNameserverOf(await readFile(source, 'utf8'));
  } catch {
    return undefined;
  }
}
