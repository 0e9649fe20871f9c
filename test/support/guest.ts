import type { Spec } from '../../oci/spec.js';
import type { Storage } from '../../proto/generated/agent.js';
import { SHARED_TAG } from '../../runtime/src/sandbox/vm-dir.js';

/**
 * For tests that drive a Sandbox directly with the rootfs itself as the VM's
 * share: the spec as the agent sees it, and the storage that mounts the share
 * as the container's root.
 */
export function rootfsShareSpec(id: string, spec: Spec): { spec: Spec; storages: Storage[] } {
  const mountPoint = `/run/kapsel/containers/${id}/rootfs`;
  return {
    spec: { ...spec, root: { ...spec.root, path: mountPoint } },
    storages: [{ driver: 'virtiofs', source: SHARED_TAG, mountPoint, options: [] }],
  };
}
