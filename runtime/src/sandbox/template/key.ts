import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { VmConfig } from '../vm/config.js';
import { qemuArgs } from '../vm/qemu-args.js';
import type { Accel } from '../vm/config.js';

/** Bumped when what a template holds changes meaning (its files, the restore RPC). */
const TEMPLATE_FORMAT = 3;

/** A stand-in for the per-VM directory in the arguments a key is made of. */
const STATE_DIR_PLACEHOLDER = '/kapsel-template-state';
const RAM_FILE_PLACEHOLDER = '/kapsel-template-ram';

export interface TemplateKey {
  /** 16 hex of sha256(everything below): the template's directory name. */
  key: string;
  /** 16 hex of sha256(format, args) alone: templates of the same shape from older files share it. */
  shapeKey: string;
  /** QEMU's argv without the per-VM paths. */
  args: string[];
  /** What identifies each file's content: path, size, mtime (ns), inode. */
  files: Record<string, string>;
}

/**
 * The key of the template a VM of this shape restores from: a hash of
 * QEMU's whole argv for it (machine, memory, cpus, devices, kernel command
 * line, accelerator; the per-VM socket paths left out) and of the identity
 * of every file that shapes the guest: kernel, initrd, guest image, QEMU's
 * binary. A file's identity is its size, mtime and inode, as make judges
 * staleness: rootfs/build.sh and a package upgrade write new files, and
 * hashing 150 MB on every start would cost more than it guards.
 */
export async function templateKey(
  cfg: VmConfig,
  accel: Accel,
  qemuBinary: string,
): Promise<TemplateKey> {
  const shape: VmConfig = {
    ...cfg,
    stateDir: STATE_DIR_PLACEHOLDER,
    template: { role: 'save', ramFile: RAM_FILE_PLACEHOLDER },
  };
  delete shape.share;
  const args = qemuArgs(shape, accel);
  const paths = {
    kernel: cfg.kernel,
    initrd: cfg.initrd,
    ...(cfg.image === undefined ? {} : { image: cfg.image.path }),
    qemu: qemuBinary,
  };
  const files: Record<string, string> = {};
  for (const [name, path] of Object.entries(paths)) {
    const st = await stat(path, { bigint: true });
    files[name] = `${path} size=${st.size} mtime=${st.mtimeNs} ino=${st.ino}`;
  }
  const hash = (v: unknown): string =>
    createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 16);
  return {
    key: hash({ format: TEMPLATE_FORMAT, args, files }),
    shapeKey: hash({ format: TEMPLATE_FORMAT, args }),
    args,
    files,
  };
}
