import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { hasMountsUnder, unmountTree } from './host-mounts.js';

/** Directory under --root that holds the sandboxes' VM directories (not a container). */
export const VM_DIR_NAME = '.vm';

/**
 * A sandbox's VM directory, `<root>/.vm/<12 hex of sha256(sandbox id)>`.
 * Named by a short hash: it holds unix sockets (QMP, virtiofsd, the sandbox
 * process's), whose paths the kernel caps at 108 bytes, and engines pass
 * 64-hex ids under long roots.
 */
export function vmDirOf(root: string, sandboxId: string): string {
  return join(root, VM_DIR_NAME, createHash('sha256').update(sandboxId).digest('hex').slice(0, 12));
}

/** The tag (virtio-fs, or 9p mount_tag) under which the guest mounts a VM directory's `shared/`. */
export const SHARED_TAG = 'kapsel-shared';

/**
 * Every file of a VM directory, named in this one place: the sandbox
 * process's own (socket, pid file, log, shared directory) and those of the
 * QEMU and virtiofsd it runs there.
 */
export interface VmDirLayout {
  dir: string;
  /** The sandbox process's gRPC socket: the agent API, forwarded. */
  socket: string;
  /** Where the per-process shims (native/host/shim.c) connect (shim-server.ts). */
  shims: string;
  /** The sandbox process's pid (`kapsel __monitor`). */
  pidFile: string;
  /** The sandbox process's stdout and stderr. */
  log: string;
  /** The directory virtiofsd shares into the guest. */
  shared: string;
  /** The boot timeline (vm/timeline.ts), JSON; `kapsel --debug` logs it. */
  timeline: string;
  /** The guest's serial console. */
  console: string;
  qmp: string;
  /** QEMU's chardev for the agent's virtio-serial port. */
  agent: string;
  /** QEMU's chardev for the DNS relay's virtio-serial port (network/dns-relay.ts). */
  dns: string;
  vfs: string;
  /** QEMU's own -pidfile. */
  pidfile: string;
  /** The host cgroup the sandbox process joins (host-cgroup/apply.ts HostCgroupPlan). */
  hostCgroup: string;
  /** Every host process the sandbox process supervises, as JSON (supervisor.ts). */
  pids: string;
}

export function vmDirLayout(dir: string): VmDirLayout {
  return {
    dir,
    socket: join(dir, 'monitor.sock'),
    shims: join(dir, 'shim.sock'),
    pidFile: join(dir, 'monitor.pid'),
    log: join(dir, 'monitor.log'),
    shared: join(dir, 'shared'),
    timeline: join(dir, 'timeline.json'),
    console: join(dir, 'console.log'),
    qmp: join(dir, 'qmp.sock'),
    agent: join(dir, 'agent.sock'),
    dns: join(dir, 'dns.sock'),
    vfs: join(dir, 'vfs.sock'),
    pidfile: join(dir, 'qemu.pid'),
    hostCgroup: join(dir, 'host-cgroup.json'),
    pids: join(dir, 'pids.json'),
  };
}

/** Unmounts the shared directory and removes the VM directory, never through a mount. */
export async function cleanupVmDir(dir: string, log: Logger): Promise<void> {
  const { shared } = vmDirLayout(dir);
  try {
    await unmountTree(shared);
  } catch (err) {
    log.warn({ err }, 'unmounting the shared directory failed');
  }
  if (hasMountsUnder(dir)) {
    log.warn({ dir }, 'mounts remain under the VM directory; leaving it');
    return;
  }
  await rm(dir, { recursive: true, force: true });
}
