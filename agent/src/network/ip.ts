import { spawn } from 'node:child_process';
import { AgentError, failedPrecondition } from '../errors.js';

/**
 * Runs iproute2's `ip` (found on PATH: /usr/bin/ip in the guest image, the
 * host's own in tests), in the agent's network namespace or, through
 * `nsenter --net=/proc/<pid>/ns/net` (util-linux or busybox), in another's.
 * A child process, never setns on a Node thread (DESIGN: namespaces are per
 * thread and Node has several).
 */
export interface IpRunner {
  /**
   * stdout; rejects with an IpFailure carrying its stderr. program is "ip"
   * unless told (tee, to write a sysctl of that namespace).
   */
  run(
    args: readonly string[],
    options?: { netnsPid?: number; stdin?: string; program?: string },
  ): Promise<string>;
}

/** ip exited non-zero; stderr is its own words ("RTNETLINK answers: File exists"). */
export class IpFailure extends Error {
  override readonly name = 'IpFailure';
  constructor(
    readonly argv: readonly string[],
    readonly stderr: string,
    readonly status: number | null,
  ) {
    super(`${argv.join(' ')}: ${stderr.trim() || `exit status ${status}`}`);
  }
}

/** A hung ip (it should take milliseconds; seconds under TCG) is killed. */
const IP_TIMEOUT_MS = 30_000;

export const realIp: IpRunner = {
  run(args, options = {}) {
    const program = options.program ?? 'ip';
    const argv =
      options.netnsPid === undefined
        ? [program, ...args]
        : ['nsenter', `--net=/proc/${options.netnsPid}/ns/net`, program, ...args];
    const [file = 'ip', ...rest] = argv;
    return new Promise((resolve, reject) => {
      const child = spawn(file, rest, {
        stdio: ['pipe', 'pipe', 'pipe'],
        timeout: IP_TIMEOUT_MS,
        killSignal: 'SIGKILL',
      });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('error', (err: NodeJS.ErrnoException) => {
        reject(
          err.code === 'ENOENT'
            ? new AgentError(
                'internal',
                `${file} not found on PATH: the network RPCs need iproute2's ip and nsenter`,
                { cause: err },
              )
            : err,
        );
      });
      child.on('close', (status, signal) => {
        if (status === 0) resolve(stdout);
        else
          reject(
            new IpFailure(argv, signal === null ? stderr : `${stderr}killed by ${signal}`, status),
          );
      });
      // ip may exit before reading all of stdin (a failed batch line).
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.stdin ?? '');
    });
  },
};

/**
 * An `ip -batch -` failure as the line that failed and ip's complaint:
 * iproute2 ends its stderr with "Command failed -:N" (N from 1).
 */
export function batchFailure(err: unknown, lines: readonly string[], where: string): unknown {
  if (!(err instanceof IpFailure)) return err;
  const m = /Command failed -:(\d+)/.exec(err.stderr);
  const line = m === null ? undefined : lines[Number(m[1]) - 1];
  const why = err.stderr
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('Command failed'))
    .join('; ');
  const what = line === undefined ? err.argv.join(' ') : `ip ${line}`;
  return failedPrecondition(`${what} ${where}: ${why || `exit status ${err.status}`}`);
}
