// Node streams over a pty master fd. net.Socket refuses a tty fd
// (ERR_INVALID_FD_TYPE), tty.ReadStream reads one but ends with EIO once the
// slave side is gone, and a tty.WriteStream writes synchronously, which
// would block the agent on a container that stops reading; so reads go
// through tty.ReadStream with EIO meaning end (as node-pty does), and writes
// through fs.write on a second fd with EAGAIN retried (libuv made the shared
// file description non-blocking).
import { close, write } from 'node:fs';
import { PassThrough, Readable, Writable } from 'node:stream';
import { ReadStream } from 'node:tty';

const RETRY_MS = 5;

/**
 * The output of a pty; ends when the last slave fd is closed. isOpen() says
 * whether fd is still this pty's (ioctls on it are safe).
 */
export function ptyReader(fd: number): { stream: Readable; isOpen: () => boolean } {
  const tty = new ReadStream(fd);
  let open = true;
  tty.on('close', () => {
    open = false;
  });
  const out = new PassThrough();
  tty.pipe(out);
  tty.on('error', () => {
    // EIO: every slave fd is closed, which is the terminal's EOF.
    tty.unpipe(out);
    out.end();
    tty.destroy();
  });
  out.on('close', () => tty.destroy());
  return { stream: out, isOpen: () => open };
}

/** Input to a pty; end() closes this fd only (the reader keeps its own). */
export function ptyWriter(fd: number): Writable {
  let closed = false;
  const closeFd = (cb: (err?: Error | null) => void): void => {
    if (closed) {
      cb();
      return;
    }
    closed = true;
    close(fd, () => {
      cb();
    });
  };
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      let off = 0;
      const step = (): void => {
        write(fd, chunk, off, chunk.length - off, null, (err, n) => {
          if (err !== null) {
            if (err.code === 'EAGAIN') setTimeout(step, RETRY_MS);
            else cb(err);
            return;
          }
          off += n;
          if (off < chunk.length) step();
          else cb();
        });
      };
      step();
    },
    final: closeFd,
    destroy(err, cb) {
      closeFd(() => {
        cb(err);
      });
    },
  });
}

/** A terminal has no separate stderr: a stream that has already ended. */
export function endedStream(): Readable {
  return Readable.from([]);
}
