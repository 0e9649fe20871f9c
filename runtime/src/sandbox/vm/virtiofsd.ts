import { access, constants, rm, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { Child, describeExit, type ExitStatus } from './child.js';
import { VIRTIOFSD_BINARY } from './config.js';
import { VmError, indentBlock } from './errors.js';

export interface VirtiofsdOptions {
  socketPath: string;
  sourceDir: string;
  /**
   * `namespace` (the default: mount, pid and net namespaces, pivot_root into
   * the shared directory) and `chroot` both work as root here.
   */
  sandbox?: 'namespace' | 'chroot';
  /**
   * Worker threads for FUSE requests. This virtiofsd (QEMU 7.2, C) defaults
   * to 0: requests are served on the virtqueue thread, which is what we want
   * on a 2-core host; Kata passes 1.
   */
  threadPoolSize?: number;
  binary?: string;
  /** How long to wait for the socket to appear. */
  timeoutMs?: number;
}

/**
 * The guest mounts virtio-fs with default_permissions (fs/fuse/virtio_fs.c),
 * so the guest kernel makes every permission decision with the caller's
 * full credentials: supplementary groups, capabilities, ACLs. This
 * virtiofsd then creates files under the caller's uid and primary gid only
 * (setresuid/setresgid on its thread, lo_change_cred in passthrough_ll.c),
 * and the kernel drops a thread's effective capabilities when its euid
 * leaves 0 (capabilities(7), "Effect of user ID changes"), so the host
 * would check once more without the supplementary groups or caps and refuse
 * what the guest allowed. SECBIT_NO_SETUID_FIXUP keeps the effective set
 * across that switch: the file still gets the caller's owner and group,
 * and the decision stays the guest's, as runc's is the container's kernel's.
 * It grants the guest nothing new: virtiofsd opens, reads and writes any
 * file of the share as root already.
 */
const VIRTIOFSD_SECUREBITS = '+no_setuid_fixup';

export function virtiofsdArgs(o: VirtiofsdOptions): string[] {
  const args = [
    `--socket-path=${o.socketPath}`,
    '-o',
    `source=${o.sourceDir}`,
    '-o',
    'cache=auto',
    '-o',
    `sandbox=${o.sandbox ?? 'namespace'}`,
    // security.capability (file capabilities) and the other xattrs reach the
    // guest; posix_acl lets the guest kernel check ACLs with the modes
    // (FUSE_POSIX_ACL, Linux >= 5.18 guest side; docs/shared-fs.md).
    '-o',
    'xattr',
    '-o',
    'posix_acl',
  ];
  if (o.threadPoolSize !== undefined) args.push(`--thread-pool-size=${o.threadPoolSize}`);
  return args;
}

/**
 * The vhost-user file system daemon serving one shared directory. It must be
 * listening before QEMU starts, since QEMU connects to its socket as a client.
 * It exits by itself once QEMU disconnects.
 */
export class Virtiofsd {
  readonly #child: Child;
  readonly socketPath: string;

  private constructor(child: Child, socketPath: string) {
    this.#child = child;
    this.socketPath = socketPath;
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** The daemon's first process; its sandboxed second one dies with it (pdeathsig), and it exits when that one does. */
  get child(): Child {
    return this.#child;
  }

  get exited(): Promise<ExitStatus> {
    return this.#child.exited;
  }

  static async start(o: VirtiofsdOptions, log: Logger): Promise<Virtiofsd> {
    const binary = o.binary ?? VIRTIOFSD_BINARY;
    const step = 'start virtiofsd for';
    try {
      await access(binary, constants.X_OK);
    } catch (err) {
      throw new VmError(
        step,
        o.sourceDir,
        `${binary} is missing (install the Debian package qemu-system-common)`,
        { cause: err },
      );
    }
    try {
      if (!(await stat(o.sourceDir)).isDirectory()) throw new Error('not a directory');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file or directory' : (err as Error).message;
      throw new VmError(step, o.sourceDir, `shared directory: ${why}`, {
        cause: err,
      });
    }
    // A socket left by a killed virtiofsd makes bind() fail.
    await rm(o.socketPath, { force: true });
    const args = virtiofsdArgs(o);
    let child: Child;
    try {
      child = await Child.start(binary, args, { securebits: VIRTIOFSD_SECUREBITS });
    } catch (err) {
      throw new VmError(step, o.sourceDir, (err as Error).message, { cause: err });
    }
    log.debug({ pid: child.pid, args }, 'virtiofsd started');
    const deadline = Date.now() + (o.timeoutMs ?? 5000);
    for (;;) {
      if (child.status) {
        throw new VmError(step, o.sourceDir, `virtiofsd ${describeExit(child.status)}`, {
          detail: indentBlock('virtiofsd stderr', child.stderr),
        });
      }
      try {
        if ((await stat(o.socketPath)).isSocket()) break;
      } catch {
        // not there yet
      }
      if (Date.now() > deadline) {
        await child.stop(1000);
        throw new VmError(
          step,
          o.sourceDir,
          `no socket at ${o.socketPath} after ${o.timeoutMs ?? 5000} ms`,
          {
            detail: indentBlock('virtiofsd stderr', child.stderr),
          },
        );
      }
      await sleep(5);
    }
    return new Virtiofsd(child, o.socketPath);
  }

  get stderr(): string {
    return this.#child.stderr;
  }

  /**
   * Stops the daemon and removes its socket. In namespace sandbox mode it
   * forks a child that gets SIGTERM when the parent dies (PR_SET_PDEATHSIG),
   * so stopping the parent is enough.
   */
  async stop(graceMs = 1000): Promise<ExitStatus> {
    const status = await this.#child.stop(graceMs);
    await rm(this.socketPath, { force: true });
    return status;
  }
}
