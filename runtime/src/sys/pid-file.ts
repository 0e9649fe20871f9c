import { errnoText } from '../../../oci/errno-text.js';
import { writeFileAtomic } from './atomic-file.js';
import { RuntimeError } from './errors.js';

/**
 * Writes `--pid-file` atomically (runc's utils_linux.go createPidFile writes
 * a temporary file beside it, then renames). A failure names the file and
 * the errno's text, as runc's `open /no/such/dir/.p: no such file or
 * directory` does, not Node's `ENOENT: ..., open '...tmp'`.
 */
export async function writePidFile(file: string, pid: number): Promise<void> {
  try {
    await writeFileAtomic(file, String(pid));
  } catch (err) {
    throw new RuntimeError(`write pid file ${file}: ${errnoText(err)}`, 1, { cause: err });
  }
}
