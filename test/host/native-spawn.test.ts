// The native helper for real: libkapsel builds busybox containers on this
// host (as root), and every case checks that no monitor, container process
// or mount outlives it.
import { execFileSync, spawn as spawnProcess } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  rmdirSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadNative } from '../../agent/src/native/index.js';
import {
  NativeError,
  type ContainerProcess,
  type Native,
  type ProcessExit,
  type SpawnRequest,
} from '../../agent/src/native/types.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const BUSYBOX = '/bin/busybox';
const skip =
  process.getuid?.() !== 0
    ? 'needs root'
    : !existsSync(BUSYBOX)
      ? `needs ${BUSYBOX} (apt-get install busybox-static)`
      : undefined;

function makeRootfs(): string {
  const root = mkdtempSync(join(tmpdir(), 'kapsel-native-'));
  chmodSync(root, 0o755); // it becomes "/", which other users must traverse
  mkdirSync(join(root, 'bin'));
  mkdirSync(join(root, 'tmp'));
  copyFileSync(BUSYBOX, join(root, 'bin/busybox'));
  chmodSync(join(root, 'bin/busybox'), 0o755);
  const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n');
  for (const name of ['sh', 'echo', 'hostname', 'cat', 'ls', 'sleep', 'true', 'uname', 'id']) {
    if (!applets.includes(name)) throw new Error(`busybox has no ${name} applet`);
    symlinkSync('busybox', join(root, 'bin', name));
  }
  writeFileSync(join(root, 'marker'), 'kapsel-rootfs-marker\n');
  // Executable, but no ELF header and no #!: execve fails with ENOEXEC.
  writeFileSync(join(root, 'bin/bad'), 'not a program\n', { mode: 0o755 });
  return root;
}

/** Pids whose parent is this process (monitors are; containers are not). */
function childPids(): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The comm field may hold spaces; the ppid is the 2nd field after ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const mountinfo = (): string[] =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ').slice(4).join(' ')); // drop the ids, which change

/** Running, or a zombie nobody reaped yet (an orphan waits for our pid 1). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function eventually(check: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function collect(stream: NodeJS.ReadableStream): Promise<string> {
  let out = '';
  for await (const chunk of stream) out += String(chunk);
  return out;
}

interface RunResult {
  stdout: string;
  stderr: string;
  exit: ProcessExit;
}

describe.skipIf(skip !== undefined)(
  `native helper spawns containers${skip !== undefined ? ` (skipped: ${skip})` : ''}`,
  () => {
    let native: Native;
    let rootfs: string;
    let childrenBefore: number[];
    let mountsBefore: string[];
    const containerPids: number[] = [];
    const spawned: ContainerProcess[] = [];

    beforeAll(() => {
      execFileSync('make', [
        '-s',
        '-C',
        join(REPO, 'native'),
        join(REPO, 'build/native/libkapsel.so'),
      ]);
      native = loadNative();
      rootfs = makeRootfs();
    });

    afterAll(() => {
      rmSync(rootfs, { recursive: true, force: true });
    });

    beforeEach(() => {
      childrenBefore = childPids();
      mountsBefore = mountinfo();
      containerPids.length = 0;
      spawned.length = 0;
    });

    afterEach(async () => {
      // The pipes are the caller's to close: a stream nobody reads never
      // sees EOF.
      for (const p of spawned) for (const s of [p.stdin, p.stdout, p.stderr]) s.destroy();
      const leftover = (): number[] => childPids().filter((p) => !childrenBefore.includes(p));
      await eventually(
        () => leftover().length === 0,
        `monitors to be reaped: ${leftover().join()}`,
      );
      await eventually(
        () => containerPids.every((p) => !existsSync(`/proc/${p}`)),
        `container processes ${containerPids.join()} to be gone`,
      );
      expect(mountinfo()).toEqual(mountsBefore);
    });

    function request(args: string[], over: Partial<SpawnRequest> = {}): SpawnRequest {
      return {
        namespaces: ['mount', 'uts', 'ipc', 'pid'],
        rootfs,
        mounts: [
          { source: 'proc', target: '/proc', fstype: 'proc', flags: 0xe, data: '' },
          { source: 'tmpfs', target: '/dev', fstype: 'tmpfs', flags: 0x2, data: 'mode=755' },
        ],
        args,
        env: ['PATH=/bin', 'HOME=/'],
        cwd: '/',
        uid: 0,
        gid: 0,
        ...over,
      };
    }

    async function spawn(req: SpawnRequest): Promise<ContainerProcess> {
      const proc = await native.spawn(req);
      containerPids.push(proc.pid);
      spawned.push(proc);
      return proc;
    }

    async function run(req: SpawnRequest, input?: string): Promise<RunResult> {
      const proc = await spawn(req);
      const stdout = collect(proc.stdout);
      const stderr = collect(proc.stderr);
      if (input !== undefined) proc.stdin.end(input);
      else proc.stdin.end();
      await proc.start();
      return { exit: await proc.exited, stdout: await stdout, stderr: await stderr };
    }

    it('runs the init as pid 1 of a new pid namespace', async () => {
      const r = await run(request(['sh', '-c', 'echo $$']));
      expect(r).toEqual({ stdout: '1\n', stderr: '', exit: { exitCode: 0, signal: 0 } });
    });

    it('sets the requested hostname', async () => {
      const r = await run(request(['hostname'], { hostname: 'kapsel-box' }));
      expect(r.stdout).toBe('kapsel-box\n');
    });

    it('reports the exit code', async () => {
      const r = await run(request(['sh', '-c', 'exit 7']));
      expect(r.exit).toEqual({ exitCode: 7, signal: 0 });
    });

    // The kernel drops signals a pid-namespace init sends itself unless it
    // handles them (pid_namespaces(7)), so the init runs in our pid ns here.
    it('reports death by signal', async () => {
      const r = await run(
        request(['sh', '-c', 'kill -9 $$'], { namespaces: ['mount', 'uts', 'ipc'] }),
      );
      expect(r.exit).toEqual({ exitCode: 137, signal: 9 });
    });

    it('relays stdin and ends the output when stdin closes', async () => {
      const r = await run(request(['cat']), 'hello\nkapsel\n');
      expect(r).toEqual({
        stdout: 'hello\nkapsel\n',
        stderr: '',
        exit: { exitCode: 0, signal: 0 },
      });
    });

    it('relays stdin written while the container runs', async () => {
      const proc = await spawn(request(['cat']));
      const out = collect(proc.stdout);
      await proc.start();
      proc.stdin.write('one\n');
      await new Promise((r) => setTimeout(r, 50));
      proc.stdin.end('two\n');
      expect(await out).toBe('one\ntwo\n');
      expect(await proc.exited).toEqual({ exitCode: 0, signal: 0 });
    });

    it('mounts /proc showing only the container processes', async () => {
      // echo is a shell builtin: the shell is the only process.
      const r = await run(request(['sh', '-c', 'echo /proc/[0-9]*']));
      expect(r.stdout).toBe('/proc/1\n');
    });

    it('pivots into the rootfs', async () => {
      const r = await run(request(['sh', '-c', 'cat /marker; ls /']));
      expect(r.stdout.split('\n')[0]).toBe('kapsel-rootfs-marker');
      expect(r.stdout).not.toMatch(/\bwork\b/);
    });

    it('mounts the root read-only when asked', async () => {
      const r = await run(
        request(['sh', '-c', 'touch /x 2>/dev/null || echo read-only'], { readonlyRootfs: true }),
      );
      expect(r.stdout).toBe('read-only\n');
      expect(existsSync(join(rootfs, 'x'))).toBe(false);
    });

    it('passes only stdin, stdout and stderr to the container', async () => {
      // The shell is pid 1; ls looks at its fds from outside.
      const r = await run(request(['sh', '-c', 'ls /proc/1/fd; true']));
      expect(r.stdout).toBe('0\n1\n2\n');
    });

    it('creates the default devices on a tmpfs /dev', async () => {
      const r = await run(
        request([
          'sh',
          '-c',
          'ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; ' +
            'for l in /dev/fd /dev/stdin /dev/ptmx; do readlink $l; done; ' +
            'echo x > /dev/null && echo ok',
        ]),
      );
      expect(r.stderr).toBe('');
      for (const [name, dev] of [
        ['null', '1,   3'],
        ['zero', '1,   5'],
        ['full', '1,   7'],
        ['random', '1,   8'],
        ['urandom', '1,   9'],
        ['tty', '5,   0'],
      ]) {
        expect(r.stdout).toMatch(new RegExp(`^crw-rw-rw-.* ${dev} .*/dev/${name}$`, 'm'));
      }
      expect(r.stdout).toContain('/proc/self/fd\n/proc/self/fd/0\npts/ptmx\nok\n');
    });

    it('switches to the requested user, groups and cwd', async () => {
      const r = await run(
        request(['sh', '-c', 'id -u; id -g; id -G; pwd'], {
          uid: 1000,
          gid: 1001,
          additionalGids: [2000],
          cwd: '/tmp',
        }),
      );
      expect(r.stdout).toBe('1000\n1001\n1001 2000\n/tmp\n');
    });

    it('rejects a missing executable at spawn, as runc create does', async () => {
      const err = await native.spawn(request(['no-such-program'])).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NativeError);
      expect((err as NativeError).message).toBe(
        'exec: "no-such-program": executable file not found in $PATH',
      );
      expect((err as NativeError).code).toBe('ENOENT');
    });

    it('rejects a mount whose source is missing, naming the target', async () => {
      const req = request(['true']);
      const err = await native
        .spawn({
          ...req,
          mounts: [
            ...req.mounts,
            { source: '/no/such/dir', target: '/mnt/data', fstype: '', flags: 0x1000, data: '' },
          ],
        })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NativeError);
      expect(err).toMatchObject({ syscall: 'mount', path: '/mnt/data', code: 'ENOENT' });
      expect((err as NativeError).message).toBe(
        'mount `/no/such/dir` to `/mnt/data`: No such file or directory',
      );
    });

    it('rejects start when execve fails, then reports the exit', async () => {
      const proc = await spawn(request(['/bin/bad']));
      const err = await proc.start().catch((e: unknown) => e);
      expect(err).toMatchObject({ syscall: 'exec', path: '/bin/bad', code: 'ENOEXEC' });
      expect((err as NativeError).message).toBe('exec `/bin/bad`: Exec format error');
      expect(await proc.exited).toEqual({ exitCode: 127, signal: 0 });
    });

    it('delivers signals to the init', async () => {
      const proc = await spawn(request(['sleep', '100'], { namespaces: ['mount', 'uts', 'ipc'] }));
      await proc.start();
      proc.signal(15);
      expect(await proc.exited).toEqual({ exitCode: 143, signal: 15 });
    });

    it('a pid-namespace init ignores SIGTERM it has no handler for, but not SIGKILL', async () => {
      const proc = await spawn(request(['sleep', '100']));
      await proc.start();
      proc.signal(15);
      const early = await Promise.race([
        proc.exited,
        new Promise((r) => {
          setTimeout(() => {
            r('still running');
          }, 300);
        }),
      ]);
      expect(early).toBe('still running');
      proc.signal(9);
      expect(await proc.exited).toEqual({ exitCode: 137, signal: 9 });
    });

    it('kills a created container that is never started', async () => {
      const proc = await spawn(request(['true']));
      proc.signal(9);
      expect(await proc.exited).toEqual({ exitCode: 137, signal: 9 });
      await expect(proc.start()).rejects.toThrow(/not waiting to start/);
    });

    it('joins the namespaces of a running container (exec)', async () => {
      const init = await spawn(request(['sleep', '100'], { hostname: 'exec-target' }));
      await init.start();
      const ns = (kind: string): string => `/proc/${init.pid}/ns/${kind}`;
      const r = await run({
        namespaces: [],
        joinNamespaces: [
          { kind: 'ipc', path: ns('ipc') },
          { kind: 'uts', path: ns('uts') },
          { kind: 'pid', path: ns('pid') },
          { kind: 'mount', path: ns('mnt') },
        ],
        mounts: [],
        args: ['sh', '-c', 'hostname; cat /marker; echo /proc/[0-9]*'],
        env: ['PATH=/bin'],
        cwd: '/',
        uid: 0,
        gid: 0,
      });
      expect(r.stderr).toBe('');
      const lines = r.stdout.split('\n');
      expect(lines[0]).toBe('exec-target');
      expect(lines[1]).toBe('kapsel-rootfs-marker');
      expect(lines[2]).toMatch(/^\/proc\/1 \/proc\/\d+$/);
      init.signal(9);
      await init.exited;
    });

    it('rejects a namespace path that cannot be opened before forking', async () => {
      const err = await native
        .spawn({
          ...request(['true']),
          joinNamespaces: [{ kind: 'network', path: '/no/such/ns' }],
        })
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ syscall: 'open', path: '/no/such/ns', code: 'ENOENT' });
    });

    it('leaves no fd behind in the agent', async () => {
      const fds = (): number => readdirSync('/proc/self/fd').length;
      await run(request(['true'])); // warm up lazily opened fds
      const before = fds();
      for (let i = 0; i < 5; i++) {
        await run(request(['sh', '-c', 'echo $$']));
        await native.spawn(request(['missing'])).catch(() => undefined);
      }
      // The last monitors' control sockets close when they are reaped.
      await eventually(() => fds() <= before, `the fd count to fall back to ${before}`);
    });

    const cgroup2 = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .find((f) => f[f.indexOf('-') + 1] === 'cgroup2')?.[4];
    it.skipIf(cgroup2 === undefined)(
      'is born in the requested cgroup, which roots its cgroup namespace',
      async () => {
        const dir = join(cgroup2 ?? '/', `kapsel-native-test-${process.pid}`);
        mkdirSync(dir);
        try {
          const proc = await spawn(
            request(['cat', '/proc/self/cgroup'], {
              namespaces: ['mount', 'uts', 'ipc', 'pid', 'cgroup'],
              cgroup: dir,
            }),
          );
          // Already there while waiting for START, as seen from outside.
          expect(readFileSync(`/proc/${proc.pid}/cgroup`, 'utf8')).toContain(
            `0::/kapsel-native-test-${process.pid}\n`,
          );
          const out = collect(proc.stdout);
          proc.stdin.end();
          await proc.start();
          expect((await out).split('\n')).toContain('0::/');
          await proc.exited;
        } finally {
          await eventually(() => {
            try {
              rmdirSync(dir);
              return true;
            } catch {
              return false;
            }
          }, 'the test cgroup to empty');
        }
      },
    );

    it('kills the container when the agent dies', async () => {
      const script = join(rootfs, '..', `kapsel-agent-death-${process.pid}.mts`);
      writeFileSync(
        script,
        `import { loadNative } from ${JSON.stringify(join(REPO, 'agent/src/native/index.ts'))};
         const p = await loadNative().spawn(${JSON.stringify(request(['sleep', '100']))});
         await p.start();
         process.stdout.write(p.pid + '\\n');
         setInterval(() => undefined, 1000);`,
      );
      try {
        const agent = spawnProcess(process.execPath, ['--import', 'tsx', script], {
          cwd: REPO,
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        const pid = await new Promise<number>((resolve, reject) => {
          agent.stdout.once('data', (d: Buffer) => {
            resolve(Number(d.toString().trim()));
          });
          agent.once('exit', () => {
            reject(new Error('agent exited early'));
          });
        });
        expect(alive(pid)).toBe(true);
        const gone = new Promise((r) => {
          agent.once('exit', r);
        });
        agent.kill('SIGKILL');
        await gone;
        await eventually(() => !alive(pid), 'the orphaned container to die');
      } finally {
        rmSync(script, { force: true });
      }
    });
  },
);
