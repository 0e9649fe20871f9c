import { createSocket } from 'node:dgram';
import { connect, isIPv6, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { AgentClient } from '../agent-client.js';
import {
  DNS_HEADER_BYTES,
  encodeFrame,
  FrameDecoder,
  servfailFor,
  type DnsFrame,
} from './dns-frame.js';

export interface HostDnsRelayOptions {
  /** How long one upstream query may take, in ms (default 4000: under the guest relay's 6 s). */
  timeoutMs?: number;
  /** Queries forwarded at once; more are dropped, as a busy server drops UDP (default 256). */
  maxInFlight?: number;
  /** Upstream port (default 53; tests use another). */
  upstreamPort?: number;
  /** Pause between attempts to connect the QEMU chardev, in ms (default 200). */
  retryMs?: number;
}

/**
 * The host end of the guest's DNS relay: connects to the QEMU chardev of the
 * `kapsel.dns.0` port (<vm dir>/dns.sock), and answers each framed query
 * (dns-frame.ts) by asking `address`:53 from this process's network
 * namespace, which is the container's host namespace: there Docker's
 * embedded DNS server takes queries to 127.0.0.11:53 (an iptables DNAT to
 * its random port, in that namespace's OUTPUT chain). UDP queries go out as
 * UDP and TCP ones as TCP (RFC 7766 8: 2-byte length prefix), so Docker's
 * truncation (TC) and the client's TCP retry work as with runc.
 *
 * A failed or timed-out query is answered SERVFAIL, as Docker's resolver
 * answers when its upstream fails. Garbage on the port drops the connection
 * and connects again; nothing here rejects unhandled.
 */
export class HostDnsRelay {
  #address: string | undefined;
  #socket: Socket | undefined;
  #generation = 0;
  #inFlight = 0;
  #closed = false;
  #retry: NodeJS.Timeout | undefined;
  readonly #timeoutMs: number;
  readonly #maxInFlight: number;
  readonly #upstreamPort: number;
  readonly #retryMs: number;

  constructor(
    private readonly chardev: string,
    private readonly log: Logger,
    options: HostDnsRelayOptions = {},
  ) {
    this.#timeoutMs = options.timeoutMs ?? 4000;
    this.#maxInFlight = options.maxInFlight ?? 256;
    this.#upstreamPort = options.upstreamPort ?? 53;
    this.#retryMs = options.retryMs ?? 200;
  }

  /** The resolver queries go to now, or undefined before start. */
  get address(): string | undefined {
    return this.#address;
  }

  /** Starts relaying to `address` (connecting the chardev if not yet); idempotent. */
  start(address: string): void {
    if (this.#closed) throw new Error('the DNS relay is closed');
    this.#address = address;
    if (this.#socket === undefined && this.#retry === undefined) this.#connect();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    this.#socket?.destroy();
    this.#socket = undefined;
  }

  #connect(): void {
    this.#retry = undefined;
    if (this.#closed) return;
    const generation = ++this.#generation;
    const decoder = new FrameDecoder();
    const sock = connect(this.chardev);
    this.#socket = sock;
    let connected = false;
    sock.on('connect', () => {
      connected = true;
      this.log.debug({ chardev: this.chardev }, 'DNS relay port connected');
    });
    sock.on('data', (chunk: Buffer) => {
      let frames: DnsFrame[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        this.log.warn({ err }, 'DNS relay: garbage from the guest; reconnecting');
        sock.destroy();
        return;
      }
      for (const f of frames) this.#handle(f, sock, generation);
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      // QEMU has not opened its chardev yet (ENOENT, ECONNREFUSED) or is gone.
      if (connected) this.log.debug({ err }, 'DNS relay port failed');
    });
    sock.on('close', () => {
      if (this.#socket === sock) this.#socket = undefined;
      if (!this.#closed)
        this.#retry = setTimeout(() => {
          this.#connect();
        }, this.#retryMs);
    });
  }

  #handle(f: DnsFrame, sock: Socket, generation: number): void {
    const address = this.#address;
    if (address === undefined || this.#inFlight >= this.#maxInFlight) return;
    this.#inFlight++;
    const ask = f.transport === 'udp' ? queryUdp : queryTcp;
    ask(address, this.#upstreamPort, f.message, this.#timeoutMs)
      .catch((err: unknown) => {
        this.log.debug({ err, transport: f.transport }, 'DNS relay: upstream query failed');
        return servfailFor(f.message);
      })
      .then((answer) => {
        if (answer === undefined || answer.length < DNS_HEADER_BYTES) return;
        // An answer for a connection that has gone (the guest relay forgot it).
        if (generation !== this.#generation || sock.destroyed) return;
        sock.write(encodeFrame({ ...f, message: answer }));
      })
      .catch((err: unknown) => {
        this.log.debug({ err }, 'DNS relay: answer not sent');
      })
      .finally(() => {
        this.#inFlight--;
      });
  }
}

/** The DNS ID (RFC 1035 4.1.1) of a message. */
function idOf(msg: Buffer): number {
  return msg.readUInt16BE(0);
}

/**
 * One query over UDP from a fresh socket (a random source port, as a stub
 * resolver uses). Datagrams whose ID is not the query's are ignored.
 */
export function queryUdp(
  address: string,
  port: number,
  query: Buffer,
  timeoutMs: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = createSocket(isIPv6(address) ? 'udp6' : 'udp4');
    const done = (err: Error | undefined, answer?: Buffer): void => {
      clearTimeout(timer);
      sock.removeAllListeners('message');
      sock.on('error', () => undefined);
      try {
        sock.close();
      } catch {
        // closed already
      }
      if (err !== undefined) reject(err);
      else resolve(answer ?? Buffer.alloc(0));
    };
    const timer = setTimeout(() => {
      done(new Error(`udp query to ${address}:${port}: no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('error', (err) => {
      done(err);
    });
    sock.on('message', (msg) => {
      if (msg.length >= DNS_HEADER_BYTES && idOf(msg) === idOf(query)) done(undefined, msg);
    });
    // Connected, so an ICMP port unreachable (no resolver) fails at once.
    sock.connect(port, address, () => {
      sock.send(query, (err) => {
        if (err) done(err);
      });
    });
  });
}

/** One query over its own TCP connection (RFC 7766 8: 2-byte length prefix). */
export function queryTcp(
  address: string,
  port: number,
  query: Buffer,
  timeoutMs: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: address, port });
    let buf = Buffer.alloc(0);
    const done = (err: Error | undefined, answer?: Buffer): void => {
      clearTimeout(timer);
      sock.removeAllListeners('data');
      sock.on('error', () => undefined);
      sock.destroy();
      if (err !== undefined) reject(err);
      else resolve(answer ?? Buffer.alloc(0));
    };
    const timer = setTimeout(() => {
      done(new Error(`tcp query to ${address}:${port}: no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('error', (err) => {
      done(err);
    });
    sock.on('close', () => {
      done(new Error(`tcp query to ${address}:${port}: closed before the answer`));
    });
    sock.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      sock.end(Buffer.concat([len, query]));
    });
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 2) return;
      const n = buf.readUInt16BE(0);
      if (buf.length >= 2 + n) done(undefined, buf.subarray(2, 2 + n));
    });
  });
}

/**
 * Whether something takes TCP connections on `address`:53 in this process's
 * network namespace: Docker's resolver does (its DNAT covers TCP too). A
 * loopback nameserver that is served INSIDE the guest instead (a pod's DNS
 * sidecar on 127.0.0.1) answers nothing here, and must not be relayed.
 */
export function resolverListens(address: string, port = 53, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: address, port });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      sock.on('error', () => undefined);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => {
      done(false);
    }, timeoutMs);
    sock.on('connect', () => {
      done(true);
    });
    sock.on('error', () => {
      done(false);
    });
  });
}

/** An IPv4 loopback address (127.0.0.0/8), the only kind the guest relay serves. */
export function isLoopbackV4(address: string): boolean {
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  return m !== null && m.slice(1).every((o) => Number(o) <= 255);
}

/**
 * A sandbox's DNS relay, held by its sandbox process: the host end on the
 * chardev of the `kapsel.dns.0` port, and the agent that starts the guest end.
 */
export class SandboxDns {
  readonly relay: HostDnsRelay;

  constructor(
    chardev: string,
    private readonly agent: AgentClient,
    private readonly log: Logger,
  ) {
    this.relay = new HostDnsRelay(chardev, log);
  }

  /**
   * Makes `address`:53 in the guest network namespace of `containerId` (the
   * sandbox container) reach the same address in this namespace: starts the
   * host end and asks the agent to start the guest end (SetupDNSRelay).
   * Skipped, with a log line, when nothing listens on `address`:53 here.
   * Throws for an address that is not IPv4 loopback, or the agent's refusal.
   * @returns whether the relay is on
   */
  async enable(containerId: string, address: string): Promise<boolean> {
    if (!isLoopbackV4(address)) {
      throw new Error(`DNS relay address ${JSON.stringify(address)} is not in 127.0.0.0/8`);
    }
    if (!(await resolverListens(address))) {
      this.log.info({ address }, 'no DNS server on this address in the host namespace; no relay');
      return false;
    }
    this.relay.start(address);
    await this.agent.setupDnsRelay(containerId, address);
    this.log.info({ address }, 'DNS relay on');
    return true;
  }

  close(): void {
    this.relay.close();
  }
}
