/**
 * Exit status of a process whose reader went away: 128 + SIGPIPE, what a
 * shell reports for runc (or any C program) killed by SIGPIPE. Node ignores
 * SIGPIPE and turns it into EPIPE errors instead.
 */
export const BROKEN_PIPE_EXIT = 141;

let relays = 0;

/**
 * Makes a write to a closed stdout or stderr end kapsel as SIGPIPE would
 * end runc (`kapsel list | head -0`): exit 141, not an unhandled EPIPE with
 * a stack trace. While a relay owns the caller's stdio (relayOwnsStdio), the
 * relay handles it: it kills the guest process first.
 */
export function guardStdio(): void {
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      if (relays === 0) process.exit(BROKEN_PIPE_EXIT);
    });
  }
}

/** Marks the caller's stdio as relayed until the returned function is called. */
export function relayOwnsStdio(): () => void {
  relays++;
  let done = false;
  return () => {
    if (!done) relays--;
    done = true;
  };
}

export function isBrokenPipe(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'EPIPE';
}
