import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Mount } from '../../../proto/generated/github.com/containerd/containerd/api/types/mount.js';
import { unmountTree } from '../sandbox/host-mounts.js';
import { Code, TtrpcError } from '../ttrpc/status.js';
import { mkdirAll } from '../../../oci/fs/mkdir-all.js';

const exec = promisify(execFile);

/**
 * Mounts the rootfs containerd's snapshotter describes (CreateTaskRequest
 * .rootfs: an overlay, or a bind for the native snapshotter) at
 * `<bundle>/rootfs`, where config.json's root.path points, as runc's shim
 * does (mount.All in runtime/v2/runc/container.go). Returns the target, or
 * undefined when containerd sent no mounts (the rootfs is there already).
 */
export async function mountRootfs(
  bundle: string,
  mounts: readonly Mount[],
): Promise<string | undefined> {
  if (mounts.length === 0) return undefined;
  const target = join(bundle, 'rootfs');
  await mkdirAll(target);
  try {
    for (const m of mounts) {
      const args = ['-t', m.type === '' ? 'none' : m.type];
      if (m.options.length > 0) args.push('-o', m.options.join(','));
      await exec('mount', [...args, m.source, target]);
    }
  } catch (err) {
    await unmountTree(target).catch(() => undefined);
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw new TtrpcError(Code.Internal, `mount rootfs ${target}: ${stderr ?? String(err)}`);
  }
  return target;
}
