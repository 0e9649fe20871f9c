import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

const SETPRIV = '/usr/bin/setpriv';

/** Finds `file` as execvp would, so a missing binary fails here with ENOENT. */
export function resolveExecutable(file: string): string {
  const candidates = isAbsolute(file)
    ? [file]
    : (process.env['PATH'] ?? '/usr/bin:/bin').split(delimiter).map((d) => join(d, file));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  throw Object.assign(new Error(`spawn ${file} ENOENT`), { code: 'ENOENT', path: file });
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export function describeExit(s: ExitStatus): string {
  return s.signal ? `killed by ${s.signal}` : `exit status ${s.code ?? '?'}`;
}

/**
 * A helper process (QEMU, virtiofsd) this driver owns: its stderr is kept
 * (the last 16 KiB) for error messages, and `exited` settles exactly once.
 */
export class Child {
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<ExitStatus>;
  #status: ExitStatus | undefined;
  #stderr = '';
  #stderrAt = 0;

  private constructor(proc: ChildProcess, pid: number, exited: Promise<ExitStatus>) {
    this.proc = proc;
    this.pid = pid;
    this.exited = exited;
    void exited.then((s) => (this.#status = s));
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-16384);
      this.#stderrAt = Date.now();
    });
  }

  /**
   * Starts `file`; rejects (naming the binary) if it cannot be executed.
   * stdin is /dev/null, stdout is piped only when `stdout` is 'pipe'.
   * `securebits` is setpriv(1)'s --securebits argument (prctl
   * PR_SET_SECUREBITS before exec; the bits are inherited across it).
   */
  static async start(
    file: string,
    args: readonly string[],
    opts: { stdout?: 'pipe' | 'ignore'; securebits?: string } = {},
  ): Promise<Child> {
    const stdio: StdioOptions = ['ignore', opts.stdout ?? 'ignore', 'pipe'];
    const path = resolveExecutable(file);
    // setpriv makes the kernel kill the helper if kapsel itself dies, so a
    // crashed or SIGKILLed runtime cannot leave a VM behind; its own session
    // (detached) keeps a terminal's Ctrl-C from reaching QEMU directly.
    const hasSetpriv = existsSync(SETPRIV);
    if (opts.securebits !== undefined && !hasSetpriv) {
      throw new Error(`${SETPRIV} is missing (install util-linux): needed to start ${file}`);
    }
    const bits = opts.securebits === undefined ? [] : ['--securebits', opts.securebits];
    const proc = hasSetpriv
      ? spawn(SETPRIV, ['--pdeathsig', 'KILL', ...bits, '--', path, ...args], {
          stdio,
          detached: true,
        })
      : spawn(path, args, { stdio, detached: true });
    const exited = new Promise<ExitStatus>((resolve) => {
      proc.once('exit', (code, signal) => {
        resolve({ code, signal });
      });
    });
    await new Promise<void>((resolve, reject) => {
      proc.once('spawn', resolve);
      proc.once('error', reject);
    });
    // 'error' can come again later (a failed kill); a spawned child reports its end on 'exit'.
    proc.on('error', () => undefined);
    if (proc.pid === undefined) throw new Error(`${file}: no pid after spawn`);
    return new Child(proc, proc.pid, exited);
  }

  /** Set once the process has exited. */
  get status(): ExitStatus | undefined {
    return this.#status;
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** When it last wrote to stderr (Date.now() ms), 0 if never. */
  get stderrAt(): number {
    return this.#stderrAt;
  }

  /** Waits up to `ms` for the exit; true if it happened. */
  async waitExit(ms: number): Promise<boolean> {
    if (this.#status) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => {
        resolve(false);
      }, ms);
    });
    const r = await Promise.race([this.exited.then(() => true as const), timeout]);
    clearTimeout(timer);
    return r;
  }

  /** Sends `signal` (unless already gone), then waits up to `ms`. */
  async signalAndWait(signal: NodeJS.Signals, ms: number): Promise<boolean> {
    if (this.#status) return true;
    this.proc.kill(signal);
    return this.waitExit(ms);
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it is gone. */
  async stop(graceMs: number): Promise<ExitStatus> {
    if (!(await this.signalAndWait('SIGTERM', graceMs))) this.proc.kill('SIGKILL');
    return this.exited;
  }
}
