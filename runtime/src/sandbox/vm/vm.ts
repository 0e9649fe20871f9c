import { access, constants, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from 'pino';
import { Child, describeExit, type ExitStatus } from './child.js';
import { vmDirLayout, type VmDirLayout } from '../vm-dir.js';
import { AGENT_PORT_ID, QEMU_BINARY, sharedFsOf, type Accel, type VmConfig } from './config.js';
import { GuestConsole } from './console.js';
import { VmError, indentBlock } from './errors.js';
import { chooseAccel } from './kvm.js';
import { qemuArgs } from './qemu-args.js';
import { loadState, plugShare } from './migration.js';
import { QmpClient, type QmpEvent } from './qmp.js';
import { Timeline, markGuestPhase } from './timeline.js';
import { Virtiofsd } from './virtiofsd.js';

export interface BootOptions {
  /** Where the KVM probe verdict is cached; default: the parent of stateDir. */
  stateRoot?: string;
  /** QEMU binary; default qemu-system-x86_64 from PATH. */
  qemu?: string;
  /** virtiofsd binary; default /usr/lib/qemu/virtiofsd. */
  virtiofsd?: string;
  /** How long QEMU may take to open its QMP socket. */
  qmpTimeoutMs?: number;
  /** Aborts the boot; whatever was started is stopped. */
  signal?: AbortSignal;
  /**
   * Hands every long-lived process started (virtiofsd, QEMU) to the
   * caller's supervision; `rank` 1 marks QEMU, whose end ends the others.
   */
  adopt?: (name: string, child: Child, rank?: number) => void;
}

const QUIT_WAIT_MS = 3000;

/**
 * One guest: a QEMU child we watch (never -daemonize), its QMP connection,
 * its serial console and, with a share, its virtiofsd.
 */
export class Vm {
  readonly config: VmConfig;
  readonly accel: Accel;
  readonly paths: VmDirLayout;
  readonly timeline: Timeline;
  readonly console: GuestConsole;
  readonly exited: Promise<ExitStatus>;
  readonly #qemu: Child;
  readonly #qmp: QmpClient;
  readonly #virtiofsd: Virtiofsd | undefined;
  readonly #log: Logger;
  readonly #agentPortOpened: Promise<void>;
  #agentPortOpen = false;
  #shutdown: Promise<ExitStatus> | undefined;

  private constructor(parts: {
    config: VmConfig;
    accel: Accel;
    timeline: Timeline;
    console: GuestConsole;
    qemu: Child;
    qmp: QmpClient;
    virtiofsd: Virtiofsd | undefined;
    log: Logger;
  }) {
    this.config = parts.config;
    this.accel = parts.accel;
    this.paths = vmDirLayout(parts.config.stateDir);
    this.timeline = parts.timeline;
    this.console = parts.console;
    this.#qemu = parts.qemu;
    this.#qmp = parts.qmp;
    this.#virtiofsd = parts.virtiofsd;
    this.#log = parts.log;
    this.exited = parts.qemu.exited;
    void this.exited.then((s) => {
      this.timeline.mark('exited');
      this.#log.info({ ...s, timeline: this.timeline.toJSON() }, 'qemu exited');
    });
    // Subscribed before `cont`: QEMU is still paused, so no event is missed.
    this.#agentPortOpened = new Promise<void>((resolve) => {
      parts.qmp.on('event', (e: QmpEvent) => {
        if (e.event !== 'VSERPORT_CHANGE' || e.data['id'] !== AGENT_PORT_ID) return;
        this.#agentPortOpen = e.data['open'] === true;
        this.#log.debug({ open: this.#agentPortOpen }, 'agent port changed');
        if (this.#agentPortOpen) {
          this.timeline.mark('agentPortOpen');
          resolve();
        }
      });
    });
    this.#agentPortOpened.catch(() => undefined);
  }

  get pid(): number {
    return this.#qemu.pid;
  }

  get virtiofsdPid(): number | undefined {
    return this.#virtiofsd?.pid;
  }

  /** The host end of the guest agent's virtio-serial port (QEMU listens). */
  get agentSocketPath(): string {
    return this.paths.agent;
  }

  /** Whether the guest has the agent port open right now. */
  get agentPortOpen(): boolean {
    return this.#agentPortOpen;
  }

  get qmp(): QmpClient {
    return this.#qmp;
  }

  /**
   * Starts virtiofsd (with a share), then QEMU paused, connects QMP, and lets
   * the guest run. Resolves once QMP is up; the guest is booting then. On any
   * failure every process started so far is killed and its sockets removed.
   */
  static async boot(cfg: VmConfig, log: Logger, opts: BootOptions = {}): Promise<Vm> {
    const timeline = new Timeline();
    const paths = vmDirLayout(cfg.stateDir);
    let args: string[];
    try {
      args = qemuArgs(cfg, 'tcg'); // validates the config before anything starts
    } catch (err) {
      throw new VmError('boot vm in', cfg.stateDir, (err as Error).message, { cause: err });
    }
    await preflight(cfg);
    const verdict = await chooseAccel({
      kernel: cfg.kernel,
      stateRoot: opts.stateRoot ?? dirname(cfg.stateDir),
      log,
      requested: cfg.accel,
      ...(opts.qemu === undefined ? {} : { qemu: opts.qemu }),
    });
    args = qemuArgs(cfg, verdict.accel);
    await removeFiles(paths);

    let virtiofsd: Virtiofsd | undefined;
    let qemu: Child | undefined;
    let guestConsole: GuestConsole | undefined;
    let qmp: QmpClient | undefined;
    const sharedFs = sharedFsOf(cfg);
    try {
      if (cfg.share && sharedFs === 'virtio-fs') {
        virtiofsd = await Virtiofsd.start(
          {
            socketPath: paths.vfs,
            sourceDir: cfg.share.dir,
            ...(opts.virtiofsd === undefined ? {} : { binary: opts.virtiofsd }),
          },
          log,
        );
        timeline.mark('virtiofsdReady');
        opts.adopt?.('virtiofsd', virtiofsd.child);
      }
      opts.signal?.throwIfAborted();
      const binary = opts.qemu ?? QEMU_BINARY;
      try {
        qemu = await Child.start(binary, args, { stdout: 'pipe' });
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        const reason =
          e.code === 'ENOENT'
            ? `${binary} not found (install the Debian package qemu-system-x86)`
            : e.message;
        throw new VmError('start qemu for', cfg.stateDir, reason, { cause: err });
      }
      timeline.mark('spawned');
      opts.adopt?.('qemu', qemu, 1);
      log.info({ pid: qemu.pid, accel: verdict.accel, args }, 'qemu started');
      const stdout = qemu.proc.stdout;
      if (!stdout) throw new Error('qemu has no stdout pipe');
      guestConsole = new GuestConsole(stdout, paths.console, {
        start: timeline.start,
        onFirstLine: (l) => {
          timeline.mark('firstConsoleLine', timeline.start + l.ns);
        },
        onLine: (l) => {
          markGuestPhase(timeline, l.text, timeline.start + l.ns);
        },
      });

      const started = qemu;
      const ac = new AbortController();
      void started.exited.then(() => {
        ac.abort(new Error('qemu exited'));
      });
      const signal = opts.signal ? AbortSignal.any([ac.signal, opts.signal]) : ac.signal;
      try {
        qmp = await QmpClient.connect(paths.qmp, {
          signal,
          timeoutMs: opts.qmpTimeoutMs ?? 10_000,
        });
      } catch (err) {
        opts.signal?.throwIfAborted();
        // QEMU checks -kernel/-initrd and the devices after it opened the QMP
        // socket, so an early exit often shows up here as a closed connection.
        await started.waitExit(1000);
        throw await qemuFailure('start qemu for', cfg.stateDir, started, guestConsole, err);
      }
      timeline.mark('qmpReady');
      const template = cfg.template;
      if (template?.role === 'restore') {
        try {
          timeline.mark('restoreBegun');
          await loadState(qmp, template.stateFile, signal);
          timeline.mark('restored');
          if (cfg.share) {
            await plugShare(qmp, sharedFs, paths.vfs, cfg.share.tag);
            timeline.mark('fsPlugged');
          }
        } catch (err) {
          opts.signal?.throwIfAborted();
          await started.waitExit(1000);
          throw await qemuFailure(
            'restore the template into',
            cfg.stateDir,
            started,
            guestConsole,
            err,
          );
        }
      }
      const vm = new Vm({
        config: cfg,
        accel: verdict.accel,
        timeline,
        console: guestConsole,
        qemu: started,
        qmp,
        virtiofsd,
        log,
      });
      try {
        await qmp.execute('cont');
      } catch (err) {
        await started.waitExit(1000);
        throw await qemuFailure('start qemu for', cfg.stateDir, started, guestConsole, err);
      }
      timeline.mark('resumed');
      log.debug({ timeline: timeline.toJSON() }, 'guest running');
      return vm;
    } catch (err) {
      qmp?.close();
      if (qemu) {
        qemu.proc.kill('SIGKILL');
        await qemu.exited;
      }
      if (guestConsole)
        await Promise.race([guestConsole.done, delay(1000, undefined, { ref: false })]);
      await virtiofsd?.stop(500);
      await removeFiles(paths);
      log.debug({ err }, 'boot failed, cleaned up');
      throw err;
    }
  }

  /**
   * Resolves once the guest agent opened its virtio-serial port (QMP
   * VSERPORT_CHANGE open=true). Rejects if QEMU exits first, with the last
   * console lines in the message: that is where a dead guest says why.
   */
  async waitAgentReady(signal?: AbortSignal): Promise<void> {
    if (this.timeline.has('agentPortOpen')) return;
    const exited = this.exited.then(async () => {
      if (this.timeline.has('agentPortOpen')) return;
      throw await qemuFailure(
        'wait for the guest agent in',
        this.config.stateDir,
        this.#qemu,
        this.console,
        new Error('qemu exited before the agent opened its port'),
      );
    });
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      if (!signal) return;
      onAbort = () => {
        reject(signal.reason as Error);
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      await Promise.race([this.#agentPortOpened, exited, aborted]);
    } finally {
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Stops the VM and cleans up: waits up to `graceMs` for QEMU to exit by
   * itself (the agent powers the guest off on DestroySandbox), else asks QMP
   * to `quit`, else SIGKILL; then stops virtiofsd and removes the sockets.
   * Safe to call more than once and after QEMU died.
   */
  shutdown(graceMs = 0): Promise<ExitStatus> {
    this.#shutdown ??= this.#doShutdown(graceMs);
    return this.#shutdown;
  }

  async #doShutdown(graceMs: number): Promise<ExitStatus> {
    const q = this.#qemu;
    let how = 'exited by itself';
    if (!(await q.waitExit(graceMs))) {
      how = 'quit over qmp';
      try {
        await Promise.race([this.#qmp.execute('quit'), q.exited]);
      } catch (err) {
        this.#log.debug({ err }, 'qmp quit failed');
      }
      if (!(await q.waitExit(QUIT_WAIT_MS))) {
        how = 'killed';
        q.proc.kill('SIGKILL');
      }
    }
    const status = await q.exited;
    this.#qmp.close();
    await Promise.race([this.console.done, delay(1000, undefined, { ref: false })]);
    if (this.#virtiofsd) await this.#virtiofsd.stop(1000);
    await removeFiles(this.paths);
    this.#log.info({ how, ...status, timeline: this.timeline.toJSON() }, 'vm shut down');
    return status;
  }
}

async function preflight(cfg: VmConfig): Promise<void> {
  try {
    if (!(await stat(cfg.stateDir)).isDirectory()) throw new Error('not a directory');
  } catch (err) {
    throw new VmError('boot vm: state directory', cfg.stateDir, reason(err), { cause: err });
  }
  for (const [what, file] of [
    ['kernel', cfg.kernel],
    ['initrd', cfg.initrd],
  ] as const) {
    try {
      await access(file, constants.R_OK);
    } catch (err) {
      throw new VmError(`boot vm: read guest ${what}`, file, reason(err), { cause: err });
    }
  }
}

function reason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOENT') return 'no such file or directory';
  if (e.code === 'EACCES') return 'permission denied';
  return e.message;
}

/** An error for a QEMU that failed, carrying its stderr and the console tail. */
async function qemuFailure(
  step: string,
  path: string,
  qemu: Child,
  guestConsole: GuestConsole,
  cause: unknown,
): Promise<VmError> {
  // Let the pipes drain so the last words are in the message.
  await Promise.race([guestConsole.done, delay(500, undefined, { ref: false })]);
  const status = qemu.status;
  const what = status
    ? `qemu ${describeExit(status)}`
    : `qemu did not answer: ${(cause as Error).message}`;
  const detail = [
    indentBlock('qemu stderr', qemu.stderr),
    indentBlock('last guest console lines', guestConsole.tail(20).join('\n')),
  ]
    .filter((s) => s !== '')
    .join('\n');
  const firstStderr = qemu.stderr
    .trim()
    .split('\n')
    .find((l) => l.trim() !== '');
  // A panicking guest spends its last lines on a stack trace; the line that
  // says why goes up front.
  const panic = guestConsole
    .tail()
    .map((l) => /Kernel panic - not syncing: (.*)/.exec(l)?.[1])
    .find((m) => m !== undefined);
  const why = firstStderr ?? (panic ? `guest kernel panic: ${panic}` : undefined);
  return new VmError(step, path, why ? `${what}: ${why}` : what, {
    cause,
    detail,
  });
}

async function removeFiles(p: VmDirLayout): Promise<void> {
  await Promise.all([p.qmp, p.agent, p.dns, p.vfs, p.pidfile].map((f) => rm(f, { force: true })));
}
