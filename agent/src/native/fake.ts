// A recording stand-in for the native helper, for unit tests of the engine
// without root (youki's recording Syscall fake). It records every call in
// order and does what it was scripted to do; nothing touches the kernel.
import { PassThrough } from 'node:stream';
import {
  NativeError,
  type ContainerProcess,
  type Native,
  type ProcessExit,
  type SpawnRequest,
} from './types.js';

export type FakeCall =
  | { op: 'spawn'; req: SpawnRequest }
  | { op: 'mount'; source: string; target: string; fstype: string; flags: number; data: string }
  | { op: 'umount'; target: string; flags: number }
  | { op: 'exit'; status: number }
  | { op: 'trimMemory' }
  | { op: 'mallopt'; param: number; value: number }
  | { op: 'reseedRandom'; entropy: Buffer }
  | { op: 'setRealtime'; ns: bigint }
  | { op: 'attachDeviceFilter'; cgroupDir: string; program: Buffer; replaceFd: number }
  | { op: 'start'; pid: number }
  | { op: 'signal'; pid: number; signo: number }
  | { op: 'resize'; pid: number; rows: number; cols: number };

const SIGKILL = 9;

export class FakeProcess implements ContainerProcess {
  readonly stdin = new PassThrough();
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  readonly exited: Promise<ProcessExit>;
  started = false;
  readonly terminal: boolean;
  /** Set to make start() reject, as an execve failure would. */
  startError: NativeError | undefined;
  /** Signals that end the process (as signal exits); SIGKILL always does. */
  readonly fatalSignals = new Set<number>([SIGKILL]);
  private resolveExit!: (exit: ProcessExit) => void;
  private exit: ProcessExit | undefined;

  constructor(
    readonly pid: number,
    readonly request: SpawnRequest,
    private readonly calls: FakeCall[],
  ) {
    this.exited = new Promise((resolve) => {
      this.resolveExit = resolve;
    });
    this.terminal = request.terminal !== undefined;
    if (this.terminal) this.stderr.end();
  }

  resize(rows: number, cols: number): void {
    if (!this.terminal) throw new NativeError('resize: the process has no terminal', 22);
    this.calls.push({ op: 'resize', pid: this.pid, rows, cols });
  }

  start(): Promise<void> {
    this.calls.push({ op: 'start', pid: this.pid });
    if (this.startError !== undefined) return Promise.reject(this.startError);
    if (this.started || this.exit !== undefined) {
      return Promise.reject(new NativeError('start: container init is not waiting to start', 22));
    }
    this.started = true;
    return Promise.resolve();
  }

  signal(signo: number): void {
    this.calls.push({ op: 'signal', pid: this.pid, signo });
    if (this.exit === undefined && this.fatalSignals.has(signo)) {
      this.finish({ exitCode: 128 + signo, signal: signo });
    }
  }

  /** Makes the process exit with a code, as if it returned from main. */
  exitWith(exitCode: number): void {
    this.finish({ exitCode, signal: 0 });
  }

  finish(exit: ProcessExit): void {
    if (this.exit !== undefined) return;
    this.exit = exit;
    this.stdout.end();
    this.stderr.end();
    this.resolveExit(exit);
  }
}

export class FakeNative implements Native {
  readonly calls: FakeCall[] = [];
  readonly processes: FakeProcess[] = [];
  nextPid = 1000;
  private readonly spawnFailures: NativeError[] = [];
  private readonly mountFailures = new Map<string, NativeError>();
  private readonly umountFailures = new Map<string, NativeError>();

  /** The next spawn() rejects with err (queued, one per call). */
  failNextSpawn(err: NativeError): void {
    this.spawnFailures.push(err);
  }

  /** Every mount() onto target rejects with err. */
  failMount(target: string, err: NativeError): void {
    this.mountFailures.set(target, err);
  }

  failUmount(target: string, err: NativeError): void {
    this.umountFailures.set(target, err);
  }

  /** The calls of one kind, e.g. fake.callsOf('mount'). */
  callsOf<K extends FakeCall['op']>(op: K): Extract<FakeCall, { op: K }>[] {
    return this.calls.filter((c): c is Extract<FakeCall, { op: K }> => c.op === op);
  }

  spawn(req: SpawnRequest): Promise<ContainerProcess> {
    this.calls.push({ op: 'spawn', req });
    const failure = this.spawnFailures.shift();
    if (failure !== undefined) return Promise.reject(failure);
    const proc = new FakeProcess(this.nextPid++, req, this.calls);
    this.processes.push(proc);
    return Promise.resolve(proc);
  }

  mount(
    source: string,
    target: string,
    fstype: string,
    flags: number,
    data: string,
  ): Promise<void> {
    this.calls.push({ op: 'mount', source, target, fstype, flags, data });
    const failure = this.mountFailures.get(target);
    return failure !== undefined ? Promise.reject(failure) : Promise.resolve();
  }

  /** Records the call; returns made-up fds counting up from 100. */
  attachDeviceFilter(cgroupDir: string, program: Buffer, replaceFd = -1): number {
    this.calls.push({ op: 'attachDeviceFilter', cgroupDir, program, replaceFd });
    return 100 + this.callsOf('attachDeviceFilter').length - 1;
  }

  /** Records the call and throws FakeExit, so a test can see the agent leave. */
  exit(status: number): never {
    this.calls.push({ op: 'exit', status });
    throw new FakeExit(status);
  }

  trimMemory(): void {
    this.calls.push({ op: 'trimMemory' });
  }

  mallopt(param: number, value: number): void {
    this.calls.push({ op: 'mallopt', param, value });
  }

  reseedRandom(entropy: Buffer): void {
    this.calls.push({ op: 'reseedRandom', entropy: Buffer.from(entropy) });
  }

  setRealtime(ns: bigint): void {
    this.calls.push({ op: 'setRealtime', ns });
  }

  umount(target: string, flags = 0): Promise<void> {
    this.calls.push({ op: 'umount', target, flags });
    const failure = this.umountFailures.get(target);
    return failure !== undefined ? Promise.reject(failure) : Promise.resolve();
  }
}

/** What FakeNative.exit throws in place of ending the process. */
export class FakeExit extends Error {
  constructor(readonly status: number) {
    super(`exit(${status})`);
  }
}
