import type { Logger } from 'pino';
import { createContainer } from '../container/create.js';
import { RuntimeError } from '../sys/errors.js';

export interface CreateFlags {
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
  preserveFds: number;
  systemdCgroup?: boolean;
}

/**
 * `kapsel create [--bundle DIR] [--pid-file F] [--console-socket S] ID`.
 * --no-pivot is accepted (the guest always pivots: its rootfs is never the
 * initramfs). --preserve-fds cannot cross into a VM; extra fds are refused
 * rather than silently dropped.
 */
export async function create(
  root: string,
  id: string,
  f: CreateFlags,
  log: Logger,
  debug: boolean,
): Promise<void> {
  if (f.preserveFds > 0) {
    throw new RuntimeError(
      `--preserve-fds ${f.preserveFds}: passing fds into a VM is not supported`,
    );
  }
  await createContainer({
    root,
    id,
    bundle: f.bundle,
    ...(f.pidFile === undefined ? {} : { pidFile: f.pidFile }),
    ...(f.consoleSocket === undefined ? {} : { consoleSocket: f.consoleSocket }),
    inline: false,
    systemdCgroup: f.systemdCgroup ?? false,
    debug,
    log,
  });
}
