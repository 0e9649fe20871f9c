import { access, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { packageRoot } from '../sys/package-root.js';
import { RuntimeError } from '../sys/errors.js';

/** `kapsel spec [--bundle DIR]`: writes the default config.json, as `runc spec` does. */
export async function spec(bundle: string): Promise<void> {
  const target = join(resolve(bundle), 'config.json');
  const exists = await access(target).then(
    () => true,
    () => false,
  );
  if (exists) throw new RuntimeError('File config.json exists. Remove it first');
  const template = await readFile(join(packageRoot(), 'rootfs', 'default-spec.json'), 'utf8');
  await writeFile(target, template);
}
