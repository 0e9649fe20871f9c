import { execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  constants,
  mkdtempSync,
  openSync,
  readFileSync,
  readlinkSync,
  readSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vmDirLayout, vmDirOf } from '../../runtime/src/sandbox/vm-dir.js';
import { SHIM_PROGRAM } from '../../runtime/src/shim/spawn.js';
import {
  KAPSEL,
  kapsel,
  kapselToFiles,
  makeBundle,
  removeBundles,
  vmMissing,
} from '../support/kapsel-cli.js';
import { startConsoleReceiver } from '../support/console-receiver.js';
import { becomeSubreaper, reap } from '../support/reaper.js';

// The per-process shim is a C program (native/host/shim.c): the pid of
// --pid-file is it, and it relays stdin, stdout and stderr, forwards
// signals, ends with the guest process's exit code or by its signal, and
// serves a terminal through --console-socket. One VM: the container's init
// reads its stdin (held open by the test) while exec -d cases run beside it.
// This process is a child subreaper, so it sees each shim's end as an
// engine does.

const skip = vmMissing();

describe.skipIf(skip !== undefined)(`the C shim${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const root = mkdtempSync(join(tmpdir(), 'kapsel-cshim-root-'));
  const work = mkdtempSync(join(tmpdir(), 'kapsel-cshim-'));
  const id = 'cshim';
  const k = (...args: string[]): ReturnType<typeof kapsel> => kapsel(['--root', root, ...args]);
  let shim = 0;
  let stdin: number | undefined;
  const out = join(work, 'init.out');
  const err = join(work, 'init.err');

  beforeAll(async () => {
    becomeSubreaper();
    const bundle = makeBundle((s) => {
      if (s.process === undefined) return;
      s.process.terminal = false;
      s.process.args = [
        'sh',
        '-c',
        'read x; echo out:$x; echo err:$x >&2; read y; echo bye:$y; exit 7',
      ];
    });
    const pidFile = join(work, 'init.pid');
    // As an engine does: create with a FIFO as stdin (containerd's), files
    // as output. Opened for reading first, without blocking, so that our
    // writing end can open; closing it is the process's stdin EOF.
    const fifo = join(work, 'stdin');
    execFileSync('mkfifo', [fifo]);
    const inFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    stdin = openSync(fifo, 'w');
    const outFd = openSync(out, 'w');
    const errFd = openSync(err, 'w');
    const c = spawn(KAPSEL, ['--root', root, 'create', '-b', bundle, '--pid-file', pidFile, id], {
      stdio: [inFd, outFd, errFd],
    });
    for (const fd of [inFd, outFd, errFd]) closeSync(fd);
    const code = await new Promise((resolve) => c.once('exit', resolve));
    expect(code).toBe(0);
    shim = Number(readFileSync(pidFile, 'utf8'));
    expect((await k('start', id)).code).toBe(0);
  });

  afterAll(async () => {
    if (stdin !== undefined) closeSync(stdin);
    await k('delete', '--force', id);
    rmSync(root, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
    removeBundles();
  });

  async function until(what: () => string, has: string): Promise<string> {
    for (let i = 0; i < 300 && !what().includes(has); i++) await sleep(100);
    return what();
  }

  /** `exec -d` of `script` (sh -c) with `flags`; its output and its shim's pid. */
  async function execDetached(
    name: string,
    script: string,
    flags: string[] = [],
  ): Promise<{ stdout: () => string; stderr: () => string; code: number | null; pid: number }> {
    const pidFile = join(work, `${name}.pid`);
    const r = await kapselToFiles(
      ['--root', root, 'exec', '-d', ...flags, '--pid-file', pidFile, id, 'sh', '-c', script],
      work,
    );
    expect(r.stderr()).toBe('');
    expect(r.code).toBe(0);
    return { ...r, pid: Number(readFileSync(pidFile, 'utf8')) };
  }

  it('the pid in --pid-file of create is the C shim, and it relays stdin, stdout and stderr', async () => {
    expect(readlinkSync(`/proc/${shim}/exe`)).toMatch(new RegExp(`/${SHIM_PROGRAM}$`));
    writeSync(stdin ?? -1, 'hello\n');
    expect(await until(() => readFileSync(out, 'utf8'), 'out:hello')).toBe('out:hello\n');
    expect(await until(() => readFileSync(err, 'utf8'), 'err:hello')).toBe('err:hello\n');
  });

  it('exec -d: a guest process killed by SIGTERM ends its shim by SIGTERM', async () => {
    const { pid } = await execDetached('term', 'kill -TERM $$');
    expect(await reap(pid, 30_000)).toEqual({ code: null, signal: 15 });
  });

  it('exec -d: a signal sent to the shim reaches the guest process, whose exit code it ends with', async () => {
    const r = await execDetached(
      'trap',
      'trap "echo got-usr1; exit 5" USR1; echo ready; while :; do sleep 1; done',
    );
    expect(await until(r.stdout, 'ready')).toContain('ready');
    process.kill(r.pid, 'SIGUSR1');
    expect(await reap(r.pid, 30_000)).toEqual({ code: 5, signal: null });
    expect(r.stdout()).toBe('ready\ngot-usr1\n');
  });

  it('exec -d -t: a pty through --console-socket, resized and typed into', async () => {
    const sock = join(work, 'console.sock');
    const receiver = await startConsoleReceiver(sock, 'typed');
    const { pid } = await execDetached('tty', 'read x; echo size=$(stty size) line=$x', [
      '-t',
      '--console-socket',
      sock,
    ]);
    expect(readlinkSync(`/proc/${pid}/exe`)).toMatch(new RegExp(`/${SHIM_PROGRAM}$`));
    expect(await reap(pid, 30_000)).toEqual({ code: 0, signal: null });
    await receiver.exited;
    const said = receiver.said();
    expect(said).toMatch(/name=\/dev\/pts\/\d+/);
    // The guest's own pty echoes the line; the host's passes it raw.
    expect(said).toContain('size=31 101 line=typed');
  });

  it('exec -d whose stdout reader goes away: its process gets SIGPIPE, as with runc (141)', async () => {
    // A pipe we read one line from, then close: `exec -d ID yes | head -1`.
    const fifo = join(work, 'yes.out');
    execFileSync('mkfifo', [fifo]);
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const writer = openSync(fifo, 'w');
    const pidFile = join(work, 'yes.pid');
    const c = spawn(KAPSEL, ['--root', root, 'exec', '-d', '--pid-file', pidFile, id, 'yes'], {
      stdio: ['ignore', writer, 'inherit'],
    });
    closeSync(writer);
    expect(await new Promise((resolve) => c.once('exit', resolve))).toBe(0);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    const line = Buffer.alloc(2);
    for (let i = 0; i < 300; i++) {
      try {
        if (readSync(reader, line) === 2) break;
      } catch {
        // EAGAIN: nothing yet
      }
      await sleep(100);
    }
    closeSync(reader);
    expect(line.toString()).toBe('y\n');
    expect(await reap(pid, 30_000)).toEqual({ code: 141, signal: null });
    const ps = await k('exec', id, 'ps', '-o', 'args');
    expect(ps.stdout).not.toMatch(/\byes\b/);
  });

  it('the shim socket is 0600; a peer that breaks the protocol loses its connection, the sandbox serves on', async () => {
    const layout = vmDirLayout(vmDirOf(root, id));
    expect(statSync(layout.shims).mode & 0o777).toBe(0o600);
    const bad = [
      Buffer.from([99, 0, 0, 0, 0]), // no such frame type
      Buffer.from([1, 0xff, 0xff, 0xff, 0xff]), // too long
      Buffer.from([8, 0, 0, 0, 1, 65]), // stdin before the hello
      Buffer.from([1, 0, 0, 0, 3, 0, 0, 0]), // a hello without an id
    ];
    for (const frame of bad) {
      const sock = createConnection(layout.shims);
      sock.on('error', () => undefined);
      await new Promise((resolve) => {
        sock.once('close', resolve);
        sock.write(frame);
      });
    }
    const e = await k('exec', id, 'echo', 'alive');
    expect(e.stdout).toBe('alive\n');
    expect(readFileSync(layout.log, 'utf8').match(/a shim broke the protocol/g)).toHaveLength(
      bad.length,
    );
  });

  it('the init ends at its stdin EOF: the shim exits with its code, 7', async () => {
    writeSync(stdin ?? -1, 'world\n');
    closeSync(stdin ?? -1);
    stdin = undefined;
    expect(await reap(shim, 30_000)).toEqual({ code: 7, signal: null });
    expect(readFileSync(out, 'utf8')).toBe('out:hello\nbye:world\n');
    const log = readFileSync(join(root, id, 'shim.log'), 'utf8');
    expect(log).toMatch(/"msg":"process exited".*"exitCode":7,"signal":0/);
  });
});
