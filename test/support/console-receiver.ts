import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

// runc's --console-socket receiver, as containerd's console.RecvFd does it
// (Python's socket.recv_fds is the independent implementation): takes the
// pty master and its name, sets the window to 31 rows x 101 columns, waits a
// second (the resize reaches the guest before the input), types a line,
// then prints everything the terminal shows until it closes (EIO: the
// slave's holder is gone).
const RECEIVER = `
import fcntl, os, socket, struct, sys, termios, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
msg, fds, _, _ = socket.recv_fds(c, 1024, 1)
m = fds[0]
print("name=" + msg.decode(), flush=True)
fcntl.ioctl(m, termios.TIOCSWINSZ, struct.pack("HHHH", 31, 101, 0, 0))
time.sleep(1)
os.write(m, sys.argv[2].encode() + b"\\n")
seen = b""
while True:
    try:
        d = os.read(m, 4096)
    except OSError:
        break
    if not d:
        break
    seen += d
print("seen=" + repr(seen), flush=True)
`;

export interface ConsoleReceiver {
  /** What it printed so far: `name=/dev/pts/N`, then `seen=b'...'` (Python's repr). */
  said(): string;
  /** Resolves when it has printed all. */
  exited: Promise<unknown>;
}

/** Listens on `socket` and, once sent a pty master, types `line` into it. */
export async function startConsoleReceiver(socket: string, line: string): Promise<ConsoleReceiver> {
  const child = spawn('python3', ['-c', RECEIVER, socket, line], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // Listened for from the start: it may end while the caller reaps a shim.
  const exited = new Promise((resolve) => child.once('exit', resolve));
  let said = '';
  child.stdout.on('data', (d: Buffer) => (said += d.toString()));
  while (!said.includes('listening')) await sleep(20);
  return { said: () => said, exited };
}
