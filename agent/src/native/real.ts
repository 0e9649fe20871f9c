// The Native interface over libkapsel. kapsel_spawn() forks a monitor that
// clones the container init; from then on everything is messages on the
// control socket (see native/lib/monitor.c):
//   monitor -> us: READY{pid} | ERROR, then after START: STARTED | ERROR,
//                  then EXITED{wait status}, then EOF (the monitor exited)
//   us -> monitor: START, SIGNAL{signo}; closing the socket kills the container
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

class MonitoredProcess implements ContainerProcess {
  pid = 0;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly terminal: boolean;
  private readonly ptyMaster: number;
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
  ) {
    const fd = (i: number): number => fds[i] ?? -1;
    // libuv sees pipes and unix sockets as pipes; net.Socket works on both,
    // EOF included.
    this.control = new Socket({ fd: fd(0), readable: true, writable: true });
    // A terminal: kapsel_spawn hands out the pty master twice (stdin,
    // stdout) and no stderr.
    this.terminal = fd(3) < 0;
    this.ptyMaster = this.terminal ? fd(2) : -1;
    if (this.terminal) {
      this.stdin = ptyWriter(fd(1));
      const reader = ptyReader(fd(2));
      this.stdout = reader.stream;
      this.ptyOpen = reader.isOpen;
      this.stderr = endedStream();
    } else {
      this.stdin = new Socket({ fd: fd(1), readable: false, writable: true });
      // allowHalfOpen: at EOF a socket would otherwise destroy itself, and
      // output nobody had read yet (an exec that finished before ReadStdout
      // came) would never be delivered, nor its end.
      this.stdout = new Socket({ fd: fd(2), readable: true, writable: false, allowHalfOpen: true });
      this.stderr = new Socket({ fd: fd(3), readable: true, writable: false, allowHalfOpen: true });
    }
    // A container that stops reading its stdin must not crash the agent.
    this.stdin.on('error', () => undefined);
    this.control.on('data', (chunk: Buffer) => {
      for (const rec of this.reader.push(chunk)) this.onRecord(rec);
    });
    this.control.on('error', () => undefined);
    this.control.on('close', () => {
      this.onControlClosed();
    });
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
    this.control.write(encodeCommand(Msg.start));
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

  private finish(exit: ProcessExit): void {
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
    if (this.pid === 0) {
      // Never got READY, so nobody was handed the pipes.
      this.stdin.destroy();
      this.stdout.destroy();
      this.stderr.destroy();
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
    const proc = new MonitoredProcess(this.lib, out, out[4] ?? -1);
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

  async umount(target: string, flags = 0): Promise<void> {
    const err = Buffer.alloc(RECORD_SIZE);
    const rc = await this.lib.umount(target, flags, err);
    if (rc < 0) throw errorFromRecord(decodeRecord(err));
  }
}
