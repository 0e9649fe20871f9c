// Saving a paused guest to a file and loading it into a new QEMU, over QMP,
// for VM templates (../template/). QEMU 7.2 has no `file:` migration URI
// (8.2 does); `exec:` runs the command with /bin/sh -c and streams through it.
import { FSDEV_ID, SHARE_PORT_ID, type SharedFs } from './config.js';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { QmpClient } from './qmp.js';

const POLL_MS = 10;
/** How long cat may take to write its last buffer and exit after QEMU is done. */
const RENAME_WAIT_MS = 30_000;

/** The share device's and (virtio-fs) its chardev's QEMU ids in a templated VM. */
export const SHARE_DEVICE_ID = 'vfs0';
const SHARE_CHARDEV_ID = 'vfs';

/** A path as one word of a /bin/sh command line. */
export function shellQuote(path: string): string {
  return `'${path.replaceAll("'", `'\\''`)}'`;
}

/**
 * Stops the guest and writes its whole state (RAM without its zero pages,
 * devices) to `file`. The guest stays stopped. `migrate` answers at once
 * and runs on; QEMU reports it completed once it has closed the pipe,
 * while `cat` may still be writing, so the stream goes to `file.part`, the
 * shell renames it once cat is done, and this resolves when `file` exists.
 */
export async function saveState(qmp: QmpClient, file: string, signal?: AbortSignal): Promise<void> {
  const part = `${file}.part`;
  await ignoreSharedRam(qmp);
  await qmp.execute('stop');
  await qmp.executeRaw('migrate', {
    uri: `exec:cat > ${shellQuote(part)} && mv ${shellQuote(part)} ${shellQuote(file)}`,
  });
  await migrationEnd(qmp, signal);
  const deadline = Date.now() + RENAME_WAIT_MS;
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`save vm state: ${file} did not appear`);
    await sleep(POLL_MS, undefined, signal ? { signal } : {});
  }
}

/**
 * Loads a state saveState() wrote into a QEMU started with `-incoming
 * defer` (and `-S`, so it stays paused after). Resolves once the load
 * completed; rejects if QEMU reports it failed (a state from another shape
 * fails here: "Unknown ramblock", "Missing section footer").
 */
export async function loadState(qmp: QmpClient, file: string, signal?: AbortSignal): Promise<void> {
  await ignoreSharedRam(qmp);
  await qmp.executeRaw('migrate-incoming', { uri: `exec:cat ${shellQuote(file)}` });
  await migrationEnd(qmp, signal);
}

/**
 * Leaves RAM in shared backends out of the stream (`x-ignore-shared`,
 * QEMU 4.0+): the template's RAM is its own file, which a clone copies, so
 * the stream holds only device state. Loading RAM through the stream into
 * a fresh memfd made QEMU read every page the stream marks zero to check
 * it (ram_handle_compressed), and a read fault on shmem allocates: a 1 GiB
 * clone then held 936 MB.
 */
async function ignoreSharedRam(qmp: QmpClient): Promise<void> {
  await qmp.executeRaw('migrate-set-capabilities', {
    capabilities: [{ capability: 'x-ignore-shared', state: true }],
  });
}

/**
 * Hot-plugs the share's device into the templated VM's empty root port.
 * virtio-fs: a chardev connected to virtiofsd's socket (virtiofsd must be
 * listening), then vhost-user-fs-pci on it; virtio-9p: virtio-9p-pci on
 * the `-fsdev` QEMU was started with. Before `cont`, so the guest meets
 * the hot-plug event as soon as it runs.
 */
export async function plugShare(
  qmp: QmpClient,
  fs: SharedFs,
  socketPath: string,
  tag: string,
): Promise<void> {
  if (fs === 'virtio-9p') {
    await qmp.executeRaw('device_add', {
      driver: 'virtio-9p-pci',
      id: SHARE_DEVICE_ID,
      fsdev: FSDEV_ID,
      mount_tag: tag,
      bus: SHARE_PORT_ID,
    });
    return;
  }
  await qmp.executeRaw('chardev-add', {
    id: SHARE_CHARDEV_ID,
    backend: {
      type: 'socket',
      data: { addr: { type: 'unix', data: { path: socketPath } }, server: false },
    },
  });
  try {
    await qmp.executeRaw('device_add', {
      driver: 'vhost-user-fs-pci',
      id: SHARE_DEVICE_ID,
      chardev: SHARE_CHARDEV_ID,
      tag,
      bus: SHARE_PORT_ID,
    });
  } catch (err) {
    await qmp.executeRaw('chardev-remove', { id: SHARE_CHARDEV_ID }).catch(() => undefined);
    throw err;
  }
}

/**
 * Polls query-migrate until the migration completed; rejects if it failed
 * or was cancelled, with QEMU's error. Polled: QEMU sends MIGRATION events
 * only with the `events` capability, and an incoming QEMU whose load failed
 * exits, which closes the connection and ends the poll too.
 */
async function migrationEnd(qmp: QmpClient, signal?: AbortSignal): Promise<void> {
  for (;;) {
    signal?.throwIfAborted();
    const info = (await qmp.executeRaw('query-migrate')) as {
      status?: string;
      'error-desc'?: string;
    };
    if (info.status === 'completed') return;
    if (info.status === 'failed' || info.status === 'cancelled') {
      throw new Error(
        `migration ${info.status}${info['error-desc'] ? `: ${info['error-desc']}` : ''}`,
      );
    }
    await sleep(POLL_MS, undefined, signal ? { signal } : {});
  }
}
