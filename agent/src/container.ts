import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { isValidContainerId } from '../../proto/contract.js';
import {
  alreadyExists,
  failedPrecondition,
  invalidArgument,
  notFound,
  resourceExhausted,
} from './errors.js';
import type { ContainerProcess, ProcessExit } from './native/types.js';
import type { ExecContext } from './spec/exec.js';
import type { MountedStorage } from './storage.js';

/**
 * Bytes of stdin a process may leave unread before WriteStdin is refused: a
 * pipe holds 64 KiB (pipe(7)), this much more waits in the agent.
 */
export const STDIN_BUFFER_LIMIT = 1 << 20;

export type ContainerStatus = 'created' | 'running' | 'paused' | 'stopped';

/**
 * Ended execs a container keeps, oldest forgotten first (then NOT_FOUND):
 * a pod's long-lived container takes an exec per probe for as long as it
 * runs, and kept each one's process, streams and buffers forever
 * (bench/soak.ts: the agent grew ~20 KiB per exec). Kept, an ended exec
 * still answers a second WaitProcess and holds its id, as until now; the
 * Kata agent forgets one as soon as its wait_process returns.
 */
export const FINISHED_EXECS_KEPT = 64;

/** A process of the container (its init, or an exec) and who reads its output. */
class Proc {
  exit: ProcessExit | undefined;
  readonly readers = new Set<Readable>();

  constructor(readonly process: ContainerProcess) {
    void process.exited.then((exit) => {
      this.exit = exit;
      // Nothing can read stdin any more; on a terminal the writer also holds
      // the pty master, which would stay allocated in the container's devpts
      // until the container is removed.
      process.stdin.destroy();
    });
  }
}

/**
 * One container in the guest: its init process, held between create and
 * start, the processes exec'd into it, and the storages the agent mounted
 * for it.
 */
export class Container {
  private started = false;
  private readonly init: Proc;
  private readonly execs = new Map<string, Proc>();
  /** Set while its cgroup is frozen (PauseContainer). */
  paused = false;

  constructor(
    readonly id: string,
    init: ContainerProcess,
    readonly storageMounts: readonly MountedStorage[],
    readonly execContext: ExecContext,
    private readonly log: Logger,
  ) {
    this.init = new Proc(init);
    void init.exited.then((exit) => {
      log.info({ container: id, ...exit }, 'container init exited');
    });
  }

  get status(): ContainerStatus {
    if (this.init.exit !== undefined) return 'stopped';
    if (this.paused) return 'paused';
    return this.started ? 'running' : 'created';
  }

  get pid(): number {
    return this.init.process.pid;
  }

  get cgroupDir(): string | undefined {
    return this.execContext.cgroupDir;
  }

  /** The init ('' as runc and Kata address it) or an exec. */
  private proc(execId: string): Proc {
    if (execId === '') return this.init;
    const p = this.execs.get(execId);
    if (p === undefined) throw notFound(`exec ${execId} of container ${this.id} does not exist`);
    return p;
  }

  /** Pids of the execs still running, in the agent's pid namespace. */
  execPids(): number[] {
    return [...this.execs.values()].filter((p) => p.exit === undefined).map((p) => p.process.pid);
  }

  async start(): Promise<void> {
    if (this.started) throw failedPrecondition(`container ${this.id} has already been started`);
    if (this.init.exit !== undefined) throw failedPrecondition(`container ${this.id} is stopped`);
    if (this.paused) throw failedPrecondition(`container ${this.id} is paused`);
    this.started = true;
    await this.init.process.start();
  }

  /** Checks an exec may be added now; the caller spawns it and hands it to addExec. */
  checkExec(execId: string): void {
    if (!isValidContainerId(execId) || execId === '') {
      throw invalidArgument(`exec_id: invalid id ${JSON.stringify(execId)}`);
    }
    if (this.execs.has(execId)) {
      throw alreadyExists(`exec ${execId} of container ${this.id} already exists`);
    }
    if (this.status !== 'running') {
      throw failedPrecondition(`container ${this.id} is ${this.status}, not running`);
    }
  }

  async addExec(execId: string, proc: ContainerProcess): Promise<void> {
    this.forgetOldExecs();
    this.execs.set(execId, new Proc(proc));
    void proc.exited.then((exit) => {
      this.log.info({ container: this.id, exec: execId, ...exit }, 'exec exited');
    });
    await proc.start();
  }

  wait(execId: string): Promise<ProcessExit> {
    return this.proc(execId).process.exited;
  }

  /** Drops the oldest ended execs nobody reads beyond FINISHED_EXECS_KEPT. */
  private forgetOldExecs(): void {
    const ended = [...this.execs].filter(([, p]) => p.exit !== undefined && p.readers.size === 0);
    for (const [id, p] of ended.slice(0, Math.max(0, ended.length - FINISHED_EXECS_KEPT))) {
      this.execs.delete(id);
      // Output nobody came for: its pipes' fds go with it.
      p.process.stdout.destroy();
      p.process.stderr.destroy();
    }
  }

  signal(execId: string, signo: number): void {
    const p = this.proc(execId);
    if (p.exit !== undefined) {
      throw failedPrecondition(`process ${execId || 'init'} of ${this.id} is not running`);
    }
    p.process.signal(signo);
  }

  resize(execId: string, rows: number, cols: number): void {
    const p = this.proc(execId);
    if (!p.process.terminal) {
      throw failedPrecondition(`process ${execId || 'init'} of ${this.id} has no terminal`);
    }
    p.process.resize(rows, cols);
  }

  /**
   * WriteStdin: resolves once the process's pipe (or terminal) took the
   * bytes, so a host writing in sequence is held back by a process that does
   * not read. Writes that pile up beyond STDIN_BUFFER_LIMIT bytes without
   * being read are refused with RESOURCE_EXHAUSTED rather than buffered.
   */
  async writeStdin(execId: string, data: Buffer): Promise<void> {
    const p = this.proc(execId);
    const name = `stdin of ${execId || 'init'} of ${this.id}`;
    const stdin = p.process.stdin;
    if (p.exit !== undefined) throw failedPrecondition(`${name}: the process has exited`);
    if (stdin.writableEnded || stdin.destroyed) throw failedPrecondition(`${name}: closed`);
    if (data.length === 0) return;
    if (stdin.writableLength + data.length > STDIN_BUFFER_LIMIT) {
      throw resourceExhausted(
        `${name}: ${stdin.writableLength} bytes are still waiting for the process to read them (limit ${STDIN_BUFFER_LIMIT})`,
      );
    }
    await new Promise<void>((resolve, reject) => {
      stdin.write(data, (err) => {
        if (!err) resolve();
        // The process exited or closed its stdin meanwhile (EPIPE, or the
        // stream destroyed when it exited): the host's input has no reader.
        else reject(failedPrecondition(`${name}: the process stopped reading (${err.message})`));
      });
    });
  }

  /**
   * Ends stdin. On a terminal that is the EOF character (VEOF, ^D) as a
   * shell's user types it, since the master stays open for output.
   */
  closeStdin(execId: string): void {
    const p = this.proc(execId).process;
    if (p.stdin.writableEnded || p.stdin.destroyed) return;
    if (p.terminal) p.stdin.write(Buffer.from([4]));
    p.stdin.end();
  }

  /** Hands out stdout or stderr to one reader at a time. */
  claimOutput(which: 'stdout' | 'stderr', execId: string): Readable {
    const p = this.proc(execId);
    const stream = p.process[which];
    if (p.readers.has(stream)) {
      throw failedPrecondition(
        `${which} of ${execId || 'init'} of ${this.id} is already being read`,
      );
    }
    p.readers.add(stream);
    return stream;
  }

  releaseOutput(stream: Readable, execId: string): void {
    this.execs.get(execId)?.readers.delete(stream);
    if (execId === '') this.init.readers.delete(stream);
  }

  /** Kills every exec and the init (and with it its PID namespace) and waits for them. */
  async kill(): Promise<void> {
    const all = [...this.execs.values(), this.init];
    await Promise.all(
      all.map(async (p) => {
        if (p.exit === undefined) {
          try {
            p.process.signal(9);
          } catch (err) {
            this.log.warn({ err, container: this.id }, 'SIGKILL failed');
          }
          await p.process.exited;
        }
        p.process.stdin.destroy();
        p.process.stdout.destroy();
        p.process.stderr.destroy();
      }),
    );
  }
}
