import { constants } from 'node:fs';
import { open, readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { POLLIN, POLLOUT, pollFd } from '../native/index.js';
import type { PortDevice } from './serial.js';

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

/**
 * The agent's port, opened non-blocking (virtio_console allows one open).
 * Blocking writes wait in the guest driver while no host is connected and
 * then go to whichever host connects next (drivers/char/virtio_console.c
 * wait_port_writable): a reply to a host that hung up would open the next
 * connection. Non-blocking, a write says EAGAIN instead, and the transport
 * (serial.ts) drops it once it knows that host is gone. Reads and writes
 * that would block wait in poll(2) on a worker thread, which also wakes on
 * the host's hang-up (POLLHUP).
 */
export async function openVirtioPort(path: string): Promise<PortDevice> {
  const file = await open(path, constants.O_RDWR | constants.O_NONBLOCK);
  return {
    read: (buffer, offset, length, position) => file.read(buffer, offset, length, position),
    write: (buffer, offset, length, position) => file.write(buffer, offset, length, position),
    async wait(direction, timeoutMs) {
      await pollFd(file.fd, direction === 'in' ? POLLIN : POLLOUT, timeoutMs);
    },
    close: () => file.close(),
  };
}
