import { spawn, type ChildProcess } from 'node:child_process';
import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { AgentError, failedPrecondition, invalidArgument } from '../errors.js';
import { DNS_PORT_NAME } from '../../../proto/contract.js';

/** What the relay needs of a container: its init owns the network namespace. */
export interface DnsRelayOwner {
  readonly id: string;
  readonly pid: number;
  readonly status: string;
}

export interface DnsRelayOptions {
  /** The guest relay (native/dns/relay.c); default KAPSEL_DNS_RELAY or the image's. */
  binary?: string;
  /** Its port: a virtio-serial port name or a path; default KAPSEL_DNS_PORT or kapsel.dns.0. */
  port?: string;
  /** How long the relay may take to bind, in ms (default 10 000: seconds under TCG). */
  readyTimeoutMs?: number;
  /** Pause before starting a relay that died again, in ms (default 1000). */
  restartDelayMs?: number;
  /** Restarts before giving up (default 5). */
  maxRestarts?: number;
}

const IMAGE_BINARY = '/opt/kapsel/bin/kapsel-dns-relay';

interface Running {
  owner: DnsRelayOwner;
  address: string;
  child: ChildProcess;
  stderr: () => string;
  restarts: number;
}

/**
 * SetupDNSRelay: the guest end of the relay to Docker's embedded DNS server
 * (127.0.0.11 in the container's host network namespace, which the guest
 * cannot reach; kata-containers/runtime#175). kapsel-dns-relay serves
 * address:53 over UDP and TCP in the sandbox container's network namespace
 * and carries the queries over the virtio-serial port to the sandbox
 * process, which asks the real resolver (runtime/src/sandbox/network/dns-relay.ts).
 *
 * The relay runs under `nsenter --net=/proc/<init>/ns/net`: a child process,
 * never setns on a Node thread (DESIGN: namespaces are per thread). There is
 * one port, so one relay per sandbox. It watches the container's init
 * (pidfd) and exits with it, which is what RemoveContainer and
 * DestroySandbox do to it; it dies with the agent (PR_SET_PDEATHSIG). One
 * that dies on its own while the container lives is started again, up to
 * maxRestarts times, and logged.
 */
export class DnsRelay {
  #running: Running | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  readonly #binary: string;
  readonly #port: string;
  readonly #readyTimeoutMs: number;
  readonly #restartDelayMs: number;
  readonly #maxRestarts: number;

  constructor(
    private readonly log: Logger,
    options: DnsRelayOptions = {},
  ) {
    this.#binary = options.binary ?? (process.env['KAPSEL_DNS_RELAY'] || IMAGE_BINARY);
    this.#port = options.port ?? (process.env['KAPSEL_DNS_PORT'] || DNS_PORT_NAME);
    this.#readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
    this.#restartDelayMs = options.restartDelayMs ?? 1000;
    this.#maxRestarts = options.maxRestarts ?? 5;
  }

  /**
   * Starts the relay for `owner`'s network namespace on `address`:53 and
   * resolves once it serves. Calling it again for the same container and
   * address changes nothing. INVALID_ARGUMENT for an address outside
   * 127.0.0.0/8; FAILED_PRECONDITION when the container has stopped, shares
   * the agent's network namespace, or the sandbox's one relay serves another
   * container or address; INTERNAL with the relay's own words when it fails
   * to start ("bind `127.0.0.11:53/udp`: Address already in use").
   */
  setup(owner: DnsRelayOwner, address: string): Promise<void> {
    const run = this.#queue.then(() => this.#setup(owner, address));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #setup(owner: DnsRelayOwner, address: string): Promise<void> {
    if (
      !/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address) ||
      address.split('.').some((o) => +o > 255)
    ) {
      throw invalidArgument(`DNS relay address ${JSON.stringify(address)} is not in 127.0.0.0/8`);
    }
    if (owner.status === 'stopped') {
      throw failedPrecondition(
        `container ${owner.id} has stopped: no network namespace to relay DNS in`,
      );
    }
    await this.#checkOwnNetns(owner);
    const cur = this.#running;
    if (cur !== undefined) {
      if (cur.owner.id === owner.id && cur.address === address) return;
      throw failedPrecondition(
        `the sandbox's DNS relay serves ${cur.address} for container ${cur.owner.id} already`,
      );
    }
    this.#running = await this.#start(owner, address, 0);
  }

  /** Stops the relay (the agent is going away). */
  close(): void {
    const cur = this.#running;
    this.#running = undefined;
    cur?.child.kill('SIGKILL');
  }

  /** A container without a network namespace of its own would get the relay in the agent's. */
  async #checkOwnNetns(owner: DnsRelayOwner): Promise<void> {
    const [mine, its] = await Promise.all([
      stat('/proc/self/ns/net'),
      stat(`/proc/${owner.pid}/ns/net`).catch(() => undefined),
    ]);
    if (its === undefined) {
      throw failedPrecondition(
        `container ${owner.id} has stopped: no network namespace to relay DNS in`,
      );
    }
    if (its.ino === mine.ino && its.dev === mine.dev) {
      throw failedPrecondition(
        `container ${owner.id} has no network namespace of its own: no DNS relay in the agent's`,
      );
    }
  }

  #start(owner: DnsRelayOwner, address: string, restarts: number): Promise<Running> {
    const argv = [
      `--net=/proc/${owner.pid}/ns/net`,
      this.#binary,
      address,
      this.#port,
      String(owner.pid),
    ];
    return new Promise((resolve, reject) => {
      const child = spawn('nsenter', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      let stdout = '';
      let ready = false;
      const running: Running = { owner, address, child, stderr: () => stderr.trim(), restarts };
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        fail(`it did not start within ${this.#readyTimeoutMs} ms`);
      }, this.#readyTimeoutMs);
      const fail = (why: string): void => {
        clearTimeout(timer);
        reject(new AgentError('internal', `start the DNS relay for container ${owner.id}: ${why}`));
      };
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        // Its log lines; the last few explain a failure.
        stderr = (stderr + d).slice(-4096);
        for (const line of d.split('\n'))
          if (line !== '') this.log.info({ container: owner.id }, line);
      });
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        stdout += d;
        if (!ready && stdout.includes('ready\n')) {
          ready = true;
          clearTimeout(timer);
          this.log.info({ container: owner.id, address, pid: child.pid }, 'DNS relay serving');
          resolve(running);
        }
      });
      child.on('error', (err) => {
        fail(`nsenter: ${err.message}`);
      });
      child.on('exit', (code, signal) => {
        if (!ready) {
          fail(running.stderr() || `it exited (${signal ?? `status ${code}`})`);
          return;
        }
        this.#exited(running, code, signal);
      });
    });
  }

  #exited(r: Running, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#running !== r) return; // stopped on purpose
    const why = signal ?? `status ${code}`;
    if (r.owner.status === 'stopped' || code === 0) {
      // Its container's init exited (the relay watches it): nothing to serve.
      this.#running = undefined;
      this.log.info({ container: r.owner.id }, 'DNS relay stopped with its container');
      return;
    }
    if (r.restarts >= this.#maxRestarts) {
      this.#running = undefined;
      this.log.error(
        { container: r.owner.id, exit: why, stderr: r.stderr() },
        `DNS relay died ${r.restarts + 1} times; names on 127.0.0.11 no longer resolve`,
      );
      return;
    }
    this.log.warn(
      { container: r.owner.id, exit: why, stderr: r.stderr() },
      'DNS relay died; restarting',
    );
    const restart = async (): Promise<void> => {
      await new Promise((res) => setTimeout(res, this.#restartDelayMs));
      if (this.#running !== r || r.owner.status === 'stopped') return;
      try {
        this.#running = await this.#start(r.owner, r.address, r.restarts + 1);
      } catch (err) {
        this.#running = undefined;
        this.log.error({ err, container: r.owner.id }, 'DNS relay did not restart');
      }
    };
    this.#queue = this.#queue.then(restart);
  }
}
