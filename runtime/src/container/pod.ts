/**
 * Which sandbox (VM) a container belongs to, from the CRI annotations
 * containerd and CRI-O put on every container of a pod. A container without
 * them, or a pod's sandbox (pause) container, gets a VM of its own.
 */
export interface Placement {
  sandboxId: string;
  /** True when this container boots the VM. */
  ownsSandbox: boolean;
}

const TYPE_KEYS = ['io.kubernetes.cri.container-type', 'io.kubernetes.cri-o.ContainerType'];
const SANDBOX_KEYS = ['io.kubernetes.cri.sandbox-id', 'io.kubernetes.cri-o.SandboxID'];

export function placementOf(id: string, annotations: Record<string, string> = {}): Placement {
  const type = TYPE_KEYS.map((k) => annotations[k]).find((v) => v !== undefined);
  const sandbox = SANDBOX_KEYS.map((k) => annotations[k]).find((v) => v !== undefined && v !== '');
  if (type === 'container' && sandbox !== undefined && sandbox !== id) {
    return { sandboxId: sandbox, ownsSandbox: false };
  }
  return { sandboxId: id, ownsSandbox: true };
}
