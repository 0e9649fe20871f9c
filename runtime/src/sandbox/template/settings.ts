import { join } from 'node:path';

/**
 * Where templates live unless factory.template_path (KAPSEL_TEMPLATE_DIR)
 * says otherwise: on disk under /var/lib, not under --root (a tmpfs in /run
 * by default, where a template of ~100 MB would be RAM, and gone at
 * reboot). A template holds no container's data, only a guest booted to
 * agent-ready, so one directory serves every --root on the host; it
 * survives a kapsel crash and a reboot, and `kapsel delete` never touches it.
 */
export const DEFAULT_TEMPLATE_DIR = '/var/lib/kapsel/templates';

/**
 * Whether sandboxes start from a saved VM instead of booting
 * (docs/light-sandboxes.md, "Templates"): on by default, since every VM
 * suite passes templated and the vm project runs in 0.73 of its cold time
 * there. The configuration's factory.enable_template and KAPSEL_TEMPLATE
 * (`off` or `0` boots every VM cold) override it (config/schema.ts).
 */
export const DEFAULT_TEMPLATE_ENABLED = true;

/** The files of one template, `<dir>/<key>/`. */
export interface TemplateLayout {
  dir: string;
  /** QEMU's migration stream of the guest's devices, paused at agent-ready. */
  state: string;
  /** The guest's RAM, a sparse file: pages it never touched are holes. */
  ram: string;
  /** What the key was made of, when and how fast (TemplateMeta). */
  meta: string;
  /** The template guest's console, for when a restore goes wrong. */
  console: string;
}

export function templateLayout(root: string, key: string): TemplateLayout {
  const dir = join(root, key);
  return {
    dir,
    state: join(dir, 'state'),
    ram: join(dir, 'ram'),
    meta: join(dir, 'meta.json'),
    console: join(dir, 'console.log'),
  };
}
