import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import type { Spec } from '../../../oci/spec.js';
import { given } from '../../../oci/validate/index.js';
import { RuntimeError } from '../sys/errors.js';

export interface Bundle {
  /** Absolute path of the bundle directory. */
  dir: string;
  spec: Spec;
  /** Absolute path of the container's rootfs on the host. */
  rootfs: string;
}

/**
 * Reads and checks an OCI bundle before anything is started for it, so a
 * broken bundle fails fast and leaves nothing behind.
 */
export async function loadBundle(bundleDir: string): Promise<Bundle> {
  const dir = resolve(bundleDir);
  const configPath = `${dir}/config.json`;
  let text: string;
  try {
    text = await readFile(configPath, 'utf8');
  } catch (err) {
    throw new RuntimeError(
      `bundle ${dir}: cannot read config.json: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
  let spec: Spec;
  try {
    spec = JSON.parse(text) as Spec;
  } catch (err) {
    throw new RuntimeError(
      `bundle ${dir}: config.json is not valid JSON: ${(err as Error).message}`,
    );
  }
  if (!given(spec) || typeof spec !== 'object' || Array.isArray(spec)) {
    throw new RuntimeError(`bundle ${dir}: config.json: not a JSON object`);
  }
  if (typeof spec.ociVersion !== 'string') {
    throw new RuntimeError(`bundle ${dir}: config.json: ociVersion: missing`);
  }
  const rootPath = spec.root?.path;
  if (typeof rootPath !== 'string' || rootPath === '') {
    throw new RuntimeError(`bundle ${dir}: config.json: root.path: missing`);
  }
  const rootfs = isAbsolute(rootPath) ? rootPath : resolve(dir, rootPath);
  const st = await stat(rootfs).catch(() => undefined);
  if (st?.isDirectory() !== true) {
    throw new RuntimeError(`bundle ${dir}: root.path: ${rootfs} is not a directory`);
  }
  return { dir, spec, rootfs };
}

/**
 * The spec of a container created earlier, for the verbs after create
 * (hooks, exec's defaults); undefined when the bundle has gone since.
 */
export async function readSpec(bundle: string): Promise<Spec | undefined> {
  try {
    return JSON.parse(await readFile(`${bundle}/config.json`, 'utf8')) as Spec;
  } catch {
    return undefined;
  }
}
