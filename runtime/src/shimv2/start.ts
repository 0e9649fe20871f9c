import { closeSync, openSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { useConfigFile } from '../config/settings.js';
import { checkNetnsPath, enterNetnsArgs } from '../sandbox/network/netns.js';
import { startDetached } from '../sys/detached.js';
import { socketPathOf, vmDirOfPod } from './address.js';
import type { ShimFlags } from './flags.js';
import { configPathFromStdin } from './options.js';
import { bundleOf, podOf, shimLogOf } from './placement.js';
import { mkdirAll } from '../../../oci/fs/mkdir-all.js';

/**
 * `start`: containerd runs it in the bundle and reads the shim's ttrpc
 * address from its stdout (runtime/v2/binary.go Start). A pod's sandbox
 * starts a new long-lived shim (this binary again, detached, in its own
 * session, with stdio away from containerd's pipe); the pod's other
 * containers get the address of the shim their sandbox started, so one
 * shim (and one VM) serves the pod.
 */
export async function startCommand(f: ShimFlags): Promise<number> {
  // The serving shim started below inherits it as KAPSEL_CONFIG.
  useConfigFile(configPathFromStdin());
  const pod = podOf(f);
  const socket = socketPathOf(pod.key);
  const address = `unix://${socket}`;
  if (!pod.ownsSandbox) {
    if (!(await canConnect(socket))) {
      process.stderr.write(`start ${f.id}: the shim of pod ${pod.sandboxId} is not running\n`);
      return 1;
    }
  } else {
    if (pod.netnsPath !== undefined) {
      // Checked here, in the host's namespace: the shim will run inside it.
      try {
        await checkNetnsPath(pod.netnsPath, dirname(vmDirOfPod(pod.key)));
      } catch (err) {
        process.stderr.write(`start ${f.id}: ${(err as Error).message}\n`);
        return 1;
      }
    }
    await mkdirAll(dirname(socket), 0o700);
    // Its stderr goes to its log: a crash in native code says why there.
    const logFd = openSync(shimLogOf(f), 'a');
    await startDetached(
      [
        '-namespace',
        f.namespace,
        '-address',
        f.address,
        '-publish-binary',
        f.publishBinary,
        '-id',
        f.id,
        '-socket',
        socket,
        ...(f.debug ? ['-debug'] : []),
      ],
      ['ignore', 'ignore', logFd],
      'start the kapsel shim',
      // In the pod's network namespace (CNI's, or --with-ns network:PATH):
      // the shim mirrors it into the VM as the runc path's sandbox process does.
      pod.netnsPath === undefined ? [] : enterNetnsArgs({ kind: 'path', path: pod.netnsPath }),
    ).finally(() => {
      closeSync(logFd);
    });
  }
  // Where runc's shim leaves its address too, for whoever looks in the bundle.
  await writeFile(join(bundleOf(f), 'address'), address).catch(() => undefined);
  process.stdout.write(address);
  return 0;
}

function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      resolve(false);
    });
  });
}
