import type { Socket } from 'node:net';
import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import type { AgentClient } from '../sandbox/agent-client.js';
import { Relay } from '../shim/relay.js';
import { openInput, openOutput } from './stdio.js';

/** Where containerd wants a process's stdio (CreateTaskRequest, ExecProcessRequest). */
export interface TaskIo {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

/** Exit status of a process whose end the shim could not learn: its VM died. */
const LOST = 255;
/** How long output may keep coming after its process ended (runc's shim waits for its copiers too). */
const DRAIN_MS = 5000;

/**
 * One guest process as the task API sees it: a container's init (execId
 * '') or an exec. Holds its stdio (relayed through the agent), its state and
 * its exit. attach() once the guest process exists; watch() once it runs.
 */
export class TaskProcess {
  status: 'created' | 'running' | 'stopped' = 'created';
  exitStatus = 0;
  exitedAt: Date | undefined;
  readonly exited: Promise<void>;
  #markExited: () => void = () => undefined;
  #relay: Relay | undefined;
  #stdout: NodeJS.WritableStream | undefined;
  #stderr: NodeJS.WritableStream | undefined;
  #stdin: ReturnType<typeof openInput> | undefined;
  /** A size asked for before the process ran (ctr resizes an exec before starting it). */
  #size: [number, number] | undefined;

  constructor(
    readonly containerId: string,
    readonly execId: string,
    readonly io: TaskIo,
    /** The pid containerd is told: the VM's (QEMU), as Kata's shim reports its hypervisor's. */
    readonly pid: number,
    private readonly agent: AgentClient,
    private readonly log: Logger,
  ) {
    this.exited = new Promise((resolve) => (this.#markExited = resolve));
  }

  /** Opens the stdio and starts relaying it; the guest process must exist. */
  attach(): void {
    this.#stdout = openOutput(this.io.stdout);
    // With a terminal the guest's pty merges stderr into stdout.
    this.#stderr = this.io.terminal ? undefined : openOutput(this.io.stderr);
    const discard = new Writable({
      write: (_c, _e, cb) => {
        cb();
      },
    });
    this.#relay = new Relay(
      { agent: this.agent, id: this.containerId, execId: this.execId },
      {
        stdout: this.#stdout ?? discard,
        ...(this.io.terminal ? {} : { stderr: this.#stderr ?? discard }),
      },
      this.log,
    );
    if (this.#size !== undefined) this.#relay.resize(...this.#size);
    if (this.io.stdin !== '') {
      const relay = this.#relay;
      this.#stdin = openInput(this.io.stdin);
      this.#stdin.stream.then(
        (s) => {
          relay.feedStdin(s);
        },
        (err: unknown) => {
          this.log.warn({ err, path: this.io.stdin }, 'opening stdin failed');
        },
      );
    } else {
      // No stdin: the process reads EOF, as under runc with /dev/null.
      this.agent.closeStdin(this.containerId, this.execId).catch(() => undefined);
    }
  }

  /**
   * Follows the running process to its end: its exit status (128+n when
   * signal n killed it, as runc's shim reports), then its output drained and
   * closed, then `onExit`.
   */
  watch(onExit: (p: TaskProcess) => void): void {
    this.status = 'running';
    const relay = this.#relay;
    const done =
      relay === undefined ? Promise.reject(new Error('not attached')) : relay.wait(DRAIN_MS);
    void done
      .then(
        (exit) => {
          this.exitStatus = exit.exitCode;
        },
        (err: unknown) => {
          this.log.error({ err, id: this.containerId, execId: this.execId }, 'lost the process');
          this.exitStatus = LOST;
        },
      )
      .then(() => {
        this.exitedAt = new Date();
        this.status = 'stopped';
        this.#closeIo();
        this.#markExited();
        onExit(this);
      });
  }

  /** CloseIO: containerd's writer is done; EOF reaches the process once the pipe drains. */
  closeStdin(): void {
    this.#stdin?.abort();
  }

  resize(rows: number, columns: number): void {
    if (this.#relay === undefined) this.#size = [rows, columns];
    else this.#relay.resize(rows, columns);
  }

  /** Ends relaying for a process that will never run (Delete of a created one). */
  discard(): void {
    if (this.status !== 'stopped') {
      this.status = 'stopped';
      this.exitedAt ??= new Date();
      this.#closeIo();
      this.#markExited();
    }
  }

  #closeIo(): void {
    this.#relay?.close();
    this.#stdin?.abort();
    void this.#stdin?.stream.then((s) => s.destroy()).catch(() => undefined);
    // end() alone leaves a pipe's fd open, and the reader waits for EOF forever.
    for (const out of [this.#stdout, this.#stderr]) {
      out?.end(() => (out as Partial<Socket>).destroy?.());
    }
  }
}
