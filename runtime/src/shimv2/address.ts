import { createHash } from 'node:crypto';
import { join } from 'node:path';

/**
 * Where the containerd shim keeps its VMs and sockets: the runc path's VM
 * directory layout (sandbox/vm-dir.ts) under a root of its own.
 */
export const SHIM_ROOT = '/run/kapsel-shim';

/**
 * The key of a pod's shim: containerd's address (two containerds on one
 * host may reuse ids), the namespace and the sandbox id. Every container of
 * a pod computes the same key, finds the same socket, and so the same shim
 * (what containerd's runc shim does with its grouping annotation).
 */
export function podKey(address: string, namespace: string, sandboxId: string): string {
  return createHash('sha256').update(`${address}\n${namespace}\n${sandboxId}`).digest('hex');
}

/**
 * The pod shim's ttrpc socket, short enough for sockaddr_un's 108 bytes
 * (containerd's own shims use /run/containerd/s/<sha256> for the same reason).
 */
export function socketPathOf(key: string): string {
  return join(SHIM_ROOT, 's', key.slice(0, 32));
}

/** The pod's VM directory. */
export function vmDirOfPod(key: string): string {
  return join(SHIM_ROOT, 'vm', key.slice(0, 12));
}
