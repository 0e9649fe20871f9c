import type { Readable, Writable } from 'node:stream';
import type { Logger } from 'pino';
import { CONTAINER_ID_PATTERN } from '../../proto/contract.js';
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from './errors.js';
import type { ContainerProcess, ProcessExit } from './native/types.js';
import type { ExecContext } from './spec/exec.js';

export type ContainerStatus = 'created' | 'running' | 'paused' | 'stopped';

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
    readonly storageMounts: readonly string[],
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
    if (execId === '' || !CONTAINER_ID_PATTERN.test(execId)) {
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
    this.execs.set(execId, new Proc(proc));
    void proc.exited.then((exit) => {
      this.log.info({ container: this.id, exec: execId, ...exit }, 'exec exited');
    });
    await proc.start();
  }

  wait(execId: string): Promise<ProcessExit> {
    return this.proc(execId).process.exited;
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

  stdin(execId: string): Writable {
    return this.proc(execId).process.stdin;
  }

  /**
   * Ends stdin. On a terminal that is the EOF character (VEOF, ^D) as a
   * shell's user types it, since the master stays open for output.
   */
  closeStdin(execId: string): void {
    const p = this.proc(execId).process;
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
