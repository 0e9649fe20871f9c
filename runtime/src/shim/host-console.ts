import { closeSync, openSync } from 'node:fs';
import { isatty } from 'node:tty';
import { RuntimeError } from '../sys/errors.js';
import { errnoText } from '../../../oci/errno-text.js';

/**
 * A process with a terminal run in the foreground takes over the caller's
 * terminal, so there must be one: stderr, stdout or stdin a tty, or else a
 * controlling terminal to open as /dev/tty (runc's tty.go,
 * initHostConsole). Without one runc fails before it starts anything, with
 * `open /dev/tty: no such device or address`, and so do we; before this
 * the process ran with its terminal wired to nothing.
 * @throws RuntimeError naming the open that failed
 */
export function requireHostConsole(): void {
  if ([2, 1, 0].some((fd) => isatty(fd))) return;
  try {
    closeSync(openSync('/dev/tty', 'r+'));
  } catch (err) {
    throw new RuntimeError(`open /dev/tty: ${errnoText(err)}`, 1, { cause: err });
  }
}
