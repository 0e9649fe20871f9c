import { closeSync, openSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { startDetached } from '../sys/detached.js';
import { socketPathOf } from './address.js';
import type { ShimFlags } from './flags.js';
import { bundleOf, podOf, shimLogOf } from './placement.js';

/**
 * `start`: containerd runs it in the bundle and reads the shim's ttrpc
 * address from its stdout (runtime/v2/binary.go Start). A pod's sandbox
 * starts a new long-lived shim (this binary again, detached, in its own
 * session, with stdio away from containerd's pipe); the pod's other
 * containers get the address of the shim their sandbox started, so one
 * shim (and one VM) serves the pod.
 */
export async function startCommand(f: ShimFlags): Promise<number> {
  const pod = podOf(f);
  const socket = socketPathOf(pod.key);
  const address = `unix://${socket}`;
  if (!pod.ownsSandbox) {
    if (!(await canConnect(socket))) {
      process.stderr.write(`start ${f.id}: the shim of pod ${pod.sandboxId} is not running\n`);
      return 1;
    }
  } else {
    await mkdir(dirname(socket), { recursive: true, mode: 0o700 });
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
