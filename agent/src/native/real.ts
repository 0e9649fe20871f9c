// The Native interface over libkapsel. kapsel_spawn() forks a monitor that
// clones the container init; from then on everything is messages on the
// control socket (see native/lib/monitor.c):
//   monitor -> us: READY{pid} | ERROR, then after START: STARTED | ERROR,
//                  then EXITED{wait status}, then EOF (the monitor exited)
//   us -> monitor: START{pty index}, SIGNAL{signo}; closing the socket kills the container
import { closeSync, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import type { KapselLib } from './ffi.js';
import {
  Msg,
  RECORD_SIZE,
  RecordReader,
  decodeRecord,
  decodeWaitStatus,
  encodeCommand,
  encodeSpawnRequest,
  type ControlRecord,
} from './protocol.js';
import { endedStream, ptyReader, ptyWriter } from './pty-streams.js';
import {
  NativeError,
  type ContainerProcess,
  type Native,
  type ProcessExit,
  type SpawnRequest,
} from './types.js';

const { EINTR, EIO, EINVAL } = constants.errno;
const URANDOM = '/dev/urandom';
/** _IOW('R', 0x03, int[2]) and _IO('R', 0x07), include/uapi/linux/random.h. */
const RNDADDENTROPY = 0x40085203;
const RNDRESEEDCRNG = 0x5207;
const CLOCK_REALTIME = 0;

/** The errno's symbolic name, e.g. ENOENT, as NativeError.code names it. */
function strerror(errno: number): string {
  const name = Object.entries(constants.errno).find(([, v]) => v === errno)?.[0];
  return name ?? `errno ${errno}`;
}
const { SIGKILL } = constants.signals;

function errorFromRecord(rec: ControlRecord): NativeError {
  return new NativeError(rec.message, rec.err, {
    syscall: rec.syscall === '' ? undefined : rec.syscall,
    path: rec.path === '' ? undefined : rec.path,
  });
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: Error): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

type Phase = 'setup' | 'ready' | 'starting' | 'running' | 'exited';

interface Stdio {
  stdin: Writable;
  stdout: Readable;
  stderr: Readable;
}

class MonitoredProcess implements ContainerProcess {
  pid = 0;
  readonly terminal: boolean;
  private io: Stdio | undefined;
  private ptyMaster = -1;
  /** The index N of the process's /dev/pts/N, sent with START. */
  private ptyIndex = 0;
  private ptySlave = -1;
  private ptyOpen: () => boolean = () => false;
  readonly ready = deferred<ContainerProcess>();
  private readonly exitedD = deferred<ProcessExit>();
  readonly exited = this.exitedD.promise;
  private startD: Deferred<undefined> | undefined;
  private phase: Phase = 'setup';
  private readonly control: Socket;
  private readonly reader = new RecordReader();

  constructor(
    private readonly lib: KapselLib,
    fds: Int32Array,
    private readonly monitorPid: number,
    private readonly terminalSize: { rows: number; cols: number } | undefined,
  ) {
    const fd = (i: number): number => fds[i] ?? -1;
    // libuv sees pipes and unix sockets as pipes; net.Socket works on both,
    // EOF included.
    this.control = new Socket({ fd: fd(0), readable: true, writable: true });
    this.terminal = terminalSize !== undefined;
    // A terminal's pty is opened at READY (openPty); until then, no stdio.
    if (!this.terminal) {
      this.io = {
        stdin: new Socket({ fd: fd(1), readable: false, writable: true }),
        // allowHalfOpen: at EOF a socket would otherwise destroy itself, and
        // output nobody had read yet (an exec that finished before
        // ReadStdout came) would never be delivered, nor its end.
        stdout: new Socket({ fd: fd(2), readable: true, writable: false, allowHalfOpen: true }),
        stderr: new Socket({ fd: fd(3), readable: true, writable: false, allowHalfOpen: true }),
      };
      // A container that stops reading its stdin must not crash the agent.
      this.io.stdin.on('error', () => undefined);
    }
    this.control.on('data', (chunk: Buffer) => {
      for (const rec of this.reader.push(chunk)) this.onRecord(rec);
    });
    this.control.on('error', () => undefined);
    this.control.on('close', () => {
      this.onControlClosed();
    });
  }

  private stdio(): Stdio {
    if (this.io === undefined) throw new Error('container stdio used before READY');
    return this.io;
  }

  get stdin(): Writable {
    return this.stdio().stdin;
  }

  get stdout(): Readable {
    return this.stdio().stdout;
  }

  get stderr(): Readable {
    return this.stdio().stderr;
  }

  /**
   * The process has mounted its devpts and taken its final ids: open a pty
   * there (see native/lib/pty.c). The master is handed out twice (stdin,
   * stdout); a terminal has no separate stderr.
   */
  private openPty(size: { rows: number; cols: number }): void {
    const out = new Int32Array(4);
    const err = Buffer.alloc(RECORD_SIZE);
    if (this.lib.ptyOpenIn(this.pid, size.rows, size.cols, out, err) < 0) {
      throw errorFromRecord(decodeRecord(err));
    }
    this.ptyMaster = out[0] ?? -1;
    this.ptyIndex = out[2] ?? 0;
    // Held until the process has opened its own (see pty.c).
    this.ptySlave = out[3] ?? -1;
    const reader = ptyReader(this.ptyMaster);
    this.ptyOpen = reader.isOpen;
    const stdin = ptyWriter(out[1] ?? -1);
    stdin.on('error', () => undefined);
    this.io = { stdin, stdout: reader.stream, stderr: endedStream() };
  }

  start(): Promise<void> {
    if (this.phase !== 'ready' || this.startD !== undefined) {
      return Promise.reject(
        new NativeError(`start: container init is ${this.phase}, not waiting to start`, EINVAL, {
          syscall: 'start',
        }),
      );
    }
    const d = deferred<undefined>();
    this.startD = d;
    this.phase = 'starting';
    this.control.write(encodeCommand(Msg.start, this.ptyIndex));
    return d.promise;
  }

  signal(signo: number): void {
    if (!Number.isInteger(signo) || signo < 0 || signo > 64) {
      throw new RangeError(`not a signal number: ${signo}`);
    }
    if (this.phase === 'exited' || this.control.destroyed) return;
    this.control.write(encodeCommand(Msg.signal, signo));
  }

  resize(rows: number, cols: number): void {
    if (!this.terminal) {
      throw new NativeError('resize: the process has no terminal', EINVAL, { syscall: 'ioctl' });
    }
    if (!this.ptyOpen()) return;
    const err = Buffer.alloc(RECORD_SIZE);
    if (this.lib.ttyResize(this.ptyMaster, rows, cols, err) < 0) {
      throw errorFromRecord(decodeRecord(err));
    }
  }

  private onRecord(rec: ControlRecord): void {
    switch (rec.type) {
      case Msg.ready:
        this.pid = rec.value;
        if (this.terminalSize !== undefined) {
          try {
            this.openPty(this.terminalSize);
          } catch (err) {
            // Still in setup: the monitor's EXITED finishes the teardown.
            this.ready.reject(err as Error);
            this.control.write(encodeCommand(Msg.signal, SIGKILL));
            break;
          }
        }
        this.phase = 'ready';
        this.ready.resolve(this);
        break;
      case Msg.error:
        if (this.phase === 'setup') this.ready.reject(errorFromRecord(rec));
        else if (this.phase === 'starting' && this.startD !== undefined) {
          this.startD.reject(errorFromRecord(rec));
          this.startD = undefined;
        }
        break;
      case Msg.started:
        this.closePtySlave();
        this.phase = 'running';
        this.startD?.resolve(undefined);
        this.startD = undefined;
        break;
      case Msg.exited:
        this.finish(decodeWaitStatus(rec.value));
        break;
      default:
        break;
    }
  }

  private closePtySlave(): void {
    if (this.ptySlave >= 0) closeSync(this.ptySlave);
    this.ptySlave = -1;
  }

  private finish(exit: ProcessExit): void {
    this.closePtySlave();
    const phase = this.phase;
    this.phase = 'exited';
    if (phase === 'setup') {
      this.ready.reject(
        new NativeError(
          `container init exited during setup (exit code ${exit.exitCode}, signal ${exit.signal})`,
          EIO,
        ),
      );
    }
    this.startD?.reject(new NativeError('container init exited before it was started', EIO));
    this.startD = undefined;
    this.exitedD.resolve(exit);
  }

  /** EOF: the monitor has exited (or is exiting); reap it, nothing else will. */
  private onControlClosed(): void {
    const status = new Int32Array(1);
    while (this.lib.waitpid(this.monitorPid, status, 0) < 0 && this.lib.errno() === EINTR);
    if (this.phase !== 'exited') {
      // The monitor died without reporting (it was killed): its
      // PR_SET_PDEATHSIG took the container init down with SIGKILL.
      this.finish({ exitCode: 128 + SIGKILL, signal: SIGKILL });
    }
    if (this.pid === 0 && this.io !== undefined) {
      // Never got READY, so nobody was handed the pipes.
      this.io.stdin.destroy();
      this.io.stdout.destroy();
      this.io.stderr.destroy();
    }
  }
}

export class RealNative implements Native {
  constructor(private readonly lib: KapselLib) {}

  spawn(req: SpawnRequest): Promise<ContainerProcess> {
    let request: Buffer;
    try {
      request = encodeSpawnRequest(req);
    } catch (err) {
      return Promise.reject(
        new NativeError(
          `spawn: ${(err as Error).message}`,
          EINVAL,
          { syscall: 'spawn' },
          { cause: err },
        ),
      );
    }
    const out = new Int32Array(5);
    const err = Buffer.alloc(RECORD_SIZE);
    const rc = this.lib.spawn(request, request.length, out, err);
    if (rc < 0) return Promise.reject(errorFromRecord(decodeRecord(err)));
    const proc = new MonitoredProcess(this.lib, out, out[4] ?? -1, req.terminal);
    return proc.ready.promise;
  }

  async mount(
    source: string,
    target: string,
    fstype: string,
    flags: number,
    data: string,
  ): Promise<void> {
    const err = Buffer.alloc(RECORD_SIZE);
    const rc = await this.lib.mount(source, target, fstype, flags, 0, data, err);
    if (rc < 0) throw errorFromRecord(decodeRecord(err));
  }

  attachDeviceFilter(cgroupDir: string, program: Buffer, replaceFd = -1): number {
    const err = Buffer.alloc(RECORD_SIZE);
    const fd = this.lib.bpfDeviceFilter(cgroupDir, program, program.length / 8, replaceFd, err);
    if (fd < 0) throw errorFromRecord(decodeRecord(err));
    return fd;
  }

  exit(status: number): never {
    return this.lib.exit(status);
  }

  trimMemory(): void {
    this.lib.mallocTrim(0);
  }

  mallopt(param: number, value: number): void {
    if (this.lib.mallopt(param, value) !== 1) throw new Error(`mallopt ${param} ${value}: refused`);
  }

  reseedRandom(entropy: Buffer): void {
    const fd = openSync(URANDOM, 'w');
    try {
      // struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
      const info = Buffer.alloc(8 + entropy.length);
      info.writeInt32LE(entropy.length * 8, 0);
      info.writeInt32LE(entropy.length, 4);
      entropy.copy(info, 8);
      if (this.lib.ioctl(fd, RNDADDENTROPY, info) < 0) {
        throw this.#errno('ioctl RNDADDENTROPY', URANDOM);
      }
      if (this.lib.ioctl(fd, RNDRESEEDCRNG, null) < 0) {
        throw this.#errno('ioctl RNDRESEEDCRNG', URANDOM);
      }
    } finally {
      closeSync(fd);
    }
  }

  setRealtime(ns: bigint): void {
    const ts = Buffer.alloc(16);
    ts.writeBigInt64LE(ns / 1_000_000_000n, 0);
    ts.writeBigInt64LE(ns % 1_000_000_000n, 8);
    if (this.lib.clockSettime(CLOCK_REALTIME, ts) < 0) {
      throw this.#errno('clock_settime', 'CLOCK_REALTIME');
    }
  }

  #errno(syscall: string, path: string): NativeError {
    const errno = this.lib.errno();
    return new NativeError(`${syscall} ${path}: ${strerror(errno)}`, errno, { syscall, path });
  }

  async umount(target: string, flags = 0): Promise<void> {
    const err = Buffer.alloc(RECORD_SIZE);
    const rc = await this.lib.umount(target, flags, err);
    if (rc < 0) throw errorFromRecord(decodeRecord(err));
  }
}
