import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Spec } from '../../../../oci/spec.js';
import { RuntimeError } from '../../sys/errors.js';
import { sandboxPid } from '../process.js';

/**
 * Where a sandbox's host side lives, network-wise. The sandbox process (and
 * so QEMU, whose taps must sit beside the engine's links) runs inside the
 * container's host network namespace; the host's own is never touched.
 * - `new`: the spec asks for a new namespace (Docker): kapsel makes it, and
 *   the shim, whose pid the hooks get, lives in it, so Docker's libnetwork
 *   prestart hook configures that namespace (runc's hooks get the init's pid,
 *   which is in the container's namespace).
 * - `path`: the engine made one (Podman, CNI, CRI): it is entered.
 */
export type HostNetns = { kind: 'new' } | { kind: 'path'; path: string };

/**
 * The host network namespace a sandbox's spec asks for. Refuses a spec
 * without a network namespace (`--network host`): a VM has its own network
 * stack, so the container cannot be on the host's, and running it with a
 * different network than asked would be a silent lie.
 */
export function hostNetnsOf(spec: Spec): HostNetns {
  const ns = spec.linux?.namespaces?.find((n) => n.type === 'network');
  if (ns === undefined) {
    throw new RuntimeError(
      "linux.namespaces: no network namespace: a container in a VM cannot share the host's network namespace (--network host); give it a network namespace of its own",
    );
  }
  return ns.path === undefined || ns.path === ''
    ? { kind: 'new' }
    : { kind: 'path', path: ns.path };
}

/** argv prefix that starts a program in that namespace (util-linux; both exec, no fork). */
export function enterNetnsArgs(netns: HostNetns): string[] {
  return netns.kind === 'new'
    ? ['unshare', '--net', '--']
    : ['nsenter', `--net=${netns.path}`, '--'];
}

/** argv prefix that starts a program in the network namespace of a running process. */
export function joinNetnsOf(pid: number): string[] {
  return ['nsenter', `--net=/proc/${pid}/ns/net`, '--'];
}

/** `dev:ino` of what `path` names, or the errno code why it cannot be looked at. */
async function inodeOf(path: string): Promise<{ id: string } | { code: string }> {
  try {
    const s = await stat(path);
    return { id: `${s.dev}:${s.ino}` };
  } catch (err) {
    return { code: (err as NodeJS.ErrnoException).code ?? String(err) };
  }
}

/**
 * Refuses a namespace path a VM cannot take as its own: the host's own
 * namespace (as good as `--network host`), one that does not exist, or one
 * another sandbox of ours already mirrors (Docker's `--network container:X`
 * points at X's; two VMs cannot share one veth — such containers belong in
 * one pod, which the CRI annotations express).
 *
 * @param vmRoot `<root>/.vm`, whose VM directories name the sandbox processes
 */
export async function checkNetnsPath(path: string, vmRoot: string): Promise<void> {
  const target = await inodeOf(path);
  if ('code' in target) {
    throw new RuntimeError(
      target.code === 'ENOENT'
        ? `linux.namespaces: network namespace ${path} does not exist`
        : `linux.namespaces: network namespace ${path}: ${target.code}`,
    );
  }
  const want = target.id;
  // Ours is the engine's: the namespace `--network host` would have given.
  const own = await inodeOf('/proc/self/ns/net');
  if ('id' in own && own.id === want) {
    throw new RuntimeError(
      `linux.namespaces: network namespace ${path} is the host's: a container in a VM cannot share the host's network namespace (--network host)`,
    );
  }
  let dirs: string[] = [];
  try {
    dirs = await readdir(vmRoot);
  } catch {
    return;
  }
  for (const d of dirs) {
    const pid = await sandboxPid(join(vmRoot, d));
    if (pid === undefined) continue;
    const theirs = await inodeOf(`/proc/${pid}/ns/net`);
    if ('id' in theirs && theirs.id === want) {
      throw new RuntimeError(
        `linux.namespaces: network namespace ${path} is another kapsel sandbox's: a container cannot join another VM's network (--network container:); put them in one pod`,
      );
    }
  }
}
