import { readFile } from 'node:fs/promises';

/**
 * A file argument's text, "-" being stdin. Stdin is read as a stream: when
 * it is a socket (Node's own child_process stdio, some engines' shims),
 * open("/dev/stdin") fails with ENXIO.
 */
export async function readInputFile(path: string): Promise<string> {
  if (path !== '-') return readFile(path, 'utf8');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
