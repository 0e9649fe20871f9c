import { join } from 'node:path';
import type { Mount, Spec } from '../../../oci/spec.js';
import type { Storage } from '../../../proto/generated/agent.js';
import { bindMount, unmountTree } from '../sandbox/host-mounts.js';
import { SHARED_TAG } from '../sandbox/vm-dir.js';
import type { HostMount } from './state.js';

/** Where the agent mounts the share, per container. */
const GUEST_CONTAINERS_DIR = '/run/kapsel/containers';

export interface GuestContainer {
  spec: Spec;
  storages: Storage[];
  /** Host mounts made for it, in the order made. */
  mounts: HostMount[];
}

/**
 * Makes a container visible to the guest: binds its rootfs and every bind
 * mount source (Docker's /etc/hosts, resolv.conf, hostname, -v volumes) into
 * the sandbox's shared directory on the host, and rewrites the spec to the
 * guest's view of them. Hooks are dropped: they run on the host.
 */
export async function prepareGuestContainer(opts: {
  id: string;
  spec: Spec;
  rootfs: string;
  sharedDir: string;
}): Promise<GuestContainer> {
  const { id, spec, rootfs, sharedDir } = opts;
  const hostBase = join(sharedDir, id);
  const guestShare = `${GUEST_CONTAINERS_DIR}/${id}/share`;
  const guestBase = `${guestShare}/${id}`;
  const mounts: HostMount[] = [];
  try {
    await bindMount(rootfs, join(hostBase, 'rootfs'));
    mounts.push({ target: join(hostBase, 'rootfs') });
    const guestMounts: Mount[] = [];
    for (const [i, m] of (spec.mounts ?? []).entries()) {
      if (!isHostBind(m) || m.source === undefined) {
        guestMounts.push(m);
        continue;
      }
      const target = join(hostBase, 'mounts', String(i));
      await bindMount(m.source, target);
      mounts.push({ target });
      guestMounts.push({ ...m, source: `${guestBase}/mounts/${i}` });
    }
    const guest: Spec = {
      ...spec,
      root: { ...spec.root, path: `${guestBase}/rootfs` },
      mounts: guestMounts,
    };
    delete guest.hooks;
    return {
      spec: guest,
      storages: [{ driver: 'virtiofs', source: SHARED_TAG, mountPoint: guestShare, options: [] }],
      mounts,
    };
  } catch (err) {
    await releaseHostMounts(mounts);
    throw err;
  }
}

export async function releaseHostMounts(mounts: readonly HostMount[]): Promise<void> {
  for (const m of [...mounts].reverse()) await unmountTree(m.target);
}

function isHostBind(m: Mount): boolean {
  const o = m.options ?? [];
  return (o.includes('bind') || o.includes('rbind') || m.type === 'bind') && m.source !== undefined;
}
