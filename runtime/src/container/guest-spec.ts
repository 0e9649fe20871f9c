import { realpath } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { IdMapping, Mount, Spec } from '../../../oci/spec.js';
import type { Storage } from '../../../proto/generated/agent.js';
import { bindMount, makeOwnedDir, unmountTree } from '../sandbox/host-mounts.js';
import { shareStorage } from '../sandbox/share-storage.js';
import type { SharedFs } from '../sandbox/vm/config.js';
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
  /** The sandbox VM's share device, which the agent mounts the share from. */
  sharedFs: SharedFs;
}): Promise<GuestContainer> {
  const { id, spec, rootfs, sharedDir } = opts;
  const hostBase = join(sharedDir, id);
  const guestShare = `${GUEST_CONTAINERS_DIR}/${id}/share`;
  const guestBase = `${guestShare}/${id}`;
  const mounts: HostMount[] = [];
  // The guest mounts these as the container's root, which a user namespace
  // maps to a host id: it must traverse them, and nobody else needs to.
  const owner = {
    uid: hostIdOfRoot(spec.linux?.uidMappings),
    gid: hostIdOfRoot(spec.linux?.gidMappings),
  };
  try {
    await makeOwnedDir(hostBase, owner);
    await bindMount(rootfs, join(hostBase, 'rootfs'));
    mounts.push({ target: join(hostBase, 'rootfs') });
    const guestMounts: Mount[] = [];
    for (const [i, m] of (spec.mounts ?? []).entries()) {
      if (!isHostBind(m) || m.source === undefined) {
        guestMounts.push(m);
        continue;
      }
      // Named after the source, so the guest's mountinfo root ends as runc's does.
      const name = await bindTargetName(m.source);
      await makeOwnedDir(join(hostBase, 'mounts'), owner);
      await makeOwnedDir(join(hostBase, 'mounts', String(i)), owner);
      const target = join(hostBase, 'mounts', String(i), name);
      // As runc: `rbind` takes the mounts below the source along, `bind`
      // only the source's own file system (MS_REC, mount(2)).
      await bindMount(m.source, target, (m.options ?? []).includes('rbind'));
      mounts.push({ target });
      guestMounts.push({ ...m, source: `${guestBase}/mounts/${i}/${name}` });
    }
    const guest: Spec = {
      ...spec,
      root: { ...spec.root, path: `${guestBase}/rootfs` },
      mounts: guestMounts,
    };
    delete guest.hooks;
    return {
      spec: guest,
      storages: [shareStorage(opts.sharedFs, guestShare)],
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

/**
 * The last component of a bind source, symlinks resolved as mount(2)
 * resolves them: what runc's mountinfo shows as the root's last component.
 * The directory above it (`mounts/<index>`) keeps names unique; a source of
 * `/` (no last component) gets `root`.
 */
export async function bindTargetName(source: string): Promise<string> {
  let real = source;
  try {
    real = await realpath(source);
  } catch {
    // bindMount reports the missing source
  }
  const name = basename(real);
  return name === '' || name === '.' || name === '..' ? 'root' : name;
}

/**
 * The host id that container id 0 maps to (OCI linux.uidMappings /
 * gidMappings), or 0 without a user namespace. A mapping set without 0 gives
 * its first host id: the ids the container runs as are the mapped ones.
 */
export function hostIdOfRoot(mappings: readonly IdMapping[] | undefined): number {
  const m = mappings?.find((x) => x.containerID === 0 && x.size > 0) ?? mappings?.[0];
  return m?.hostID ?? 0;
}
