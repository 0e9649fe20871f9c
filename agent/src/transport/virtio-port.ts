import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

const PORTS_DIR = '/sys/class/virtio-ports';

/**
 * Finds the device node of the virtio-serial port QEMU named `name`
 * (`-device virtserialport,name=...`). The port appears as /dev/vportNpM once
 * virtio_console is loaded; devtmpfs creates the node, so we only wait.
 */
export async function findVirtioPort(name: string, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await lookup(name);
    if (found !== undefined) return found;
    if (Date.now() > deadline) {
      throw new Error(`find virtio port ${name}: no entry in ${PORTS_DIR} after ${timeoutMs} ms`);
    }
    await sleep(50);
  }
}

async function lookup(name: string): Promise<string | undefined> {
  let entries: string[];
  try {
    entries = await readdir(PORTS_DIR);
  } catch {
    return undefined;
  }
  for (const entry of entries) {
    try {
      const portName = (await readFile(`${PORTS_DIR}/${entry}/name`, 'utf8')).trim();
      if (portName === name) return `/dev/${entry}`;
    } catch {
      // a port without a name file is not ours
    }
  }
  return undefined;
}
