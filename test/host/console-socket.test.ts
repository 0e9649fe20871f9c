import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReadStream } from 'node:tty';
import { afterAll, describe, expect, it } from 'vitest';
import { loadHostNative } from '../../runtime/src/sys/host-native.js';
import { ROOT } from '../support/kapsel-cli.js';

const lib = join(ROOT, 'build/native/libkapsel-host.so');
const skip = existsSync(lib) ? undefined : `${lib} missing (make -C native)`;

// The receiving side of runc's --console-socket, as containerd's console.RecvFd
// does it: accept, recvmsg with SCM_RIGHTS, then use the master. Python's
// socket.recv_fds is the independent implementation here.
const RECEIVER = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
msg, fds, _, _ = socket.recv_fds(c, 1024, 1)
os.write(fds[0], b"typed on the master\\n")
print("name=" + msg.decode(), flush=True)
`;

describe.skipIf(skip !== undefined)(
  `the shim's console socket helper${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'kapsel-console-'));
    afterAll(() => {
      rmSync(dir, { recursive: true, force: true });
    });

    it('sends a pty master with SCM_RIGHTS and the pts name; bytes written to it reach the raw slave', async () => {
      const native = loadHostNative();
      const sock = join(dir, 'console.sock');
      const receiver = spawn('python3', ['-c', RECEIVER, sock], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      receiver.stdout.on('data', (d: Buffer) => (out += d.toString()));
      while (!out.includes('listening')) await new Promise((r) => setTimeout(r, 20));

      const fds = new Int32Array(2);
      expect(native.openpty(fds)).toBe(0);
      const [master, slave] = [fds[0] ?? -1, fds[1] ?? -1];
      expect(native.sendFd(sock, master, '/dev/pts/x')).toBe(0);
      native.close(master);
      const input = new ReadStream(slave);
      const got = await new Promise<string>((resolve) => {
        input.once('data', (d: Buffer) => {
          resolve(d.toString());
        });
      });
      input.destroy();
      // Raw: no CR/LF translation or echo added by the host line discipline.
      expect(got).toBe('typed on the master\n');
      await new Promise((r) => receiver.once('exit', r));
      expect(out).toContain('name=/dev/pts/x');
    });

    it('reports a missing socket as a negative errno', () => {
      const native = loadHostNative();
      const fds = new Int32Array(2);
      expect(native.openpty(fds)).toBe(0);
      expect(native.sendFd(join(dir, 'nope.sock'), fds[0] ?? -1, 'x')).toBe(-2); // ENOENT
      native.close(fds[0] ?? -1);
      native.close(fds[1] ?? -1);
    });
  },
);
