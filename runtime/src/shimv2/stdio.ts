import { closeSync, constants, createWriteStream, open, openSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { TtrpcError, Code } from '../ttrpc/status.js';

/*
 * The stdio containerd hands a task: paths of fifos it made (ctr, CRI), or
 * `file://` URIs; "" for none. runc's shim opens them with containerd's fifo
 * package (pkg/process/io.go); these are the same opens done the Node way.
 */

/**
 * Opens an output: a fifo read-write, which never blocks and never fails
 * for want of a reader (containerd opens its end before Create), written
 * through libuv's non-blocking pipe; a `file://` URI appended to.
 */
export function openOutput(path: string): NodeJS.WritableStream | undefined {
  if (path === '') return undefined;
  if (path.startsWith('file://')) return createWriteStream(fileURLToPath(path), { flags: 'a' });
  if (/^[a-z]+:\/\//.test(path)) {
    throw new TtrpcError(Code.Unimplemented, `stdio ${path}: only fifos and file:// are supported`);
  }
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  } catch (err) {
    throw new TtrpcError(Code.NotFound, `open ${path}: ${(err as NodeJS.ErrnoException).code}`);
  }
  return new Socket({ fd, readable: false, writable: true });
}

/**
 * An input fifo, opened when its writer (containerd) opens the other end:
 * the open blocks until then, so it runs off the main thread, and the
 * stream ends when the writer closes. abort() gives up on an open still
 * waiting (CloseIO, Delete) by opening the writer end ourselves.
 */
export function openInput(path: string): { stream: Promise<Readable>; abort: () => void } {
  let opened = false;
  // fs.open, not fs/promises: a FileHandle would close the fd the socket
  // owns when it is garbage-collected.
  const stream = new Promise<Readable>((resolve, reject) => {
    open(path, constants.O_RDONLY, (err, fd) => {
      opened = true;
      if (err !== null) reject(err);
      else resolve(new Socket({ fd, readable: true, writable: false }));
    });
  });
  return {
    stream,
    abort: () => {
      if (opened) return;
      try {
        closeSync(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        // no reader waiting any more
      }
    },
  };
}
