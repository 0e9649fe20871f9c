import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The kapsel checkout or install this code runs from. Docker and containerd
 * call the binary by absolute path from any directory, so nothing here may
 * depend on the working directory.
 */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      const { name } = JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown };
      if (name === 'kapsel') return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the kapsel package root');
    dir = parent;
  }
}
