import { copyFileSync, chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeBusyboxRootfs } from './busybox.js';

/** native/checker/checker.c, built by `make -C native`. */
export const CHECKER = fileURLToPath(new URL('../../build/native/kapsel-checker', import.meta.url));

export function checkerMissing(): string | undefined {
  return existsSync(CHECKER) ? undefined : `${CHECKER} missing (make -C native)`;
}

/** A busybox rootfs with the checker at /bin/checker, traversable by any uid. */
export function makeCheckerRootfs(): string {
  const dir = makeBusyboxRootfs();
  chmodSync(dir, 0o755);
  copyFileSync(CHECKER, join(dir, 'bin/checker'));
  chmodSync(join(dir, 'bin/checker'), 0o755);
  return dir;
}

/** "key rest..." lines of checker output as a map from the first words to the rest. */
export function parseChecker(out: string, keyWords = 1): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words.length <= keyWords) continue;
    m.set(words.slice(0, keyWords).join(' '), words.slice(keyWords).join(' '));
  }
  return m;
}
