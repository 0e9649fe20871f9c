import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const ROOT = join(import.meta.dirname, '..', '..');

/** The real agent, standalone on a unix socket on this host (needs root). */
export class StandaloneAgent {
  private constructor(
    readonly socket: string,
    readonly child: ChildProcess,
    readonly output: () => string,
  ) {}

  /**
   * env adds to the agent's environment (e.g. KAPSEL_CGROUP_ROOT); netns
   * (a file such as /run/netns/NAME) starts it in that network namespace,
   * which then plays the guest's root namespace (util-linux nsenter execs,
   * so the child is still the agent itself).
   */
  static async start(
    env: Record<string, string> = {},
    options: { netns?: string } = {},
  ): Promise<StandaloneAgent> {
    const socket = join(mkdtempSync(join(tmpdir(), 'kapsel-agent-')), 'agent.sock');
    let output = '';
    const agentArgv = [
      process.execPath,
      '--import',
      'tsx',
      join(ROOT, 'agent/src/main.ts'),
      '--listen',
      `unix:${socket}`,
    ];
    const [file = 'node', ...args] =
      options.netns === undefined ? agentArgv : ['nsenter', `--net=${options.netns}`, ...agentArgv];
    const child = spawn(file, args, {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, KAPSEL_LOG: 'debug', ...env },
    });
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    for (let i = 0; i < 200 && !existsSync(socket); i++) {
      if (child.exitCode !== null) break;
      await sleep(50);
    }
    if (!existsSync(socket)) {
      child.kill('SIGKILL');
      throw new Error(`agent did not start:\n${output}`);
    }
    return new StandaloneAgent(socket, child, () => output);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      await exited;
    }
    rmSync(dirname(this.socket), { recursive: true, force: true });
  }
}

export const isRoot = process.getuid?.() === 0;
