import type { Readable, Writable } from 'node:stream';
import type { Logger } from 'pino';
import { failedPrecondition } from './errors.js';
import type { ContainerProcess, ProcessExit } from './native/types.js';

export type ContainerStatus = 'created' | 'running' | 'paused' | 'stopped';

/**
 * One container in the guest: its init process, held between create and
 * start, and the storages the agent mounted for it.
 */
export class Container {
  private started = false;
  private exit: ProcessExit | undefined;
  private readers = new Set<Readable>();
  /** Set while its cgroup is frozen (PauseContainer). */
  paused = false;

  constructor(
    readonly id: string,
    private readonly init: ContainerProcess,
    readonly storageMounts: readonly string[],
    private readonly log: Logger,
    /** Its cgroup v2 directory, when the agent has cgroups; exec joins it. */
    readonly cgroupDir?: string,
  ) {
    void init.exited.then((exit) => {
      this.exit = exit;
      log.info({ container: id, ...exit }, 'container init exited');
    });
  }

  get status(): ContainerStatus {
    if (this.exit !== undefined) return 'stopped';
    if (this.paused) return 'paused';
    return this.started ? 'running' : 'created';
  }

  get pid(): number {
    return this.init.pid;
  }

  async start(): Promise<void> {
    if (this.started) throw failedPrecondition(`container ${this.id} has already been started`);
    if (this.exit !== undefined) throw failedPrecondition(`container ${this.id} is stopped`);
    this.started = true;
    await this.init.start();
  }

  wait(): Promise<ProcessExit> {
    return this.init.exited;
  }

  signal(signo: number): void {
    if (this.exit !== undefined) throw failedPrecondition(`container ${this.id} is not running`);
    this.init.signal(signo);
  }

  stdin(): Writable {
    return this.init.stdin;
  }

  /** Hands out stdout or stderr to one reader at a time. */
  claimOutput(which: 'stdout' | 'stderr'): Readable {
    const stream = this.init[which];
    if (this.readers.has(stream)) {
      throw failedPrecondition(`${which} of container ${this.id} is already being read`);
    }
    this.readers.add(stream);
    return stream;
  }

  releaseOutput(stream: Readable): void {
    this.readers.delete(stream);
  }

  /** Kills the init (and with it its PID namespace) and waits for it. */
  async kill(): Promise<void> {
    if (this.exit === undefined) {
      try {
        this.init.signal(9);
      } catch (err) {
        this.log.warn({ err, container: this.id }, 'SIGKILL of container init failed');
      }
      await this.init.exited;
    }
    this.init.stdin.destroy();
    this.init.stdout.destroy();
    this.init.stderr.destroy();
  }
}
