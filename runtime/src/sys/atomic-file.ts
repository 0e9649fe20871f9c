import { rename, writeFile } from 'node:fs/promises';

/**
 * Writes `file` so that a reader sees the old content or the new, never half
 * of it (runc writes its pid files and state this way): a temporary file
 * beside it, then rename(2), which replaces atomically within a filesystem.
 */
export async function writeFileAtomic(file: string, data: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}
