import { execFileSync, spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeBusyboxRootfs } from './busybox.js';
import { KAPSEL, type CliResult } from './kapsel-cli.js';
import type { TestNetns } from './netns.js';

/** Debian's docker client (20.10) matches Debian's daemon; the newer one in /usr/local is not needed. */
export const DOCKER = '/usr/bin/docker';
export const DOCKERD = '/usr/sbin/dockerd';
export const CTR = '/usr/bin/ctr';
export const PODMAN = '/usr/bin/podman';
export const RUNC = '/usr/sbin/runc';
export const IMAGE = 'kbusybox:latest';
/** Podman's default limits exceed this machine's hard limits, and runc refuses them. */
export const PODMAN_ULIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

/** Why an engine test cannot run here, or undefined. */
export function engineMissing(...binaries: string[]): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  const missing = binaries.find((b) => !existsSync(b));
  return missing === undefined
    ? undefined
    : `${missing} missing (apt-get install docker.io containerd podman)`;
}

/** Runs a command to the end with `stdin` as its input. */
export function runCommand(
  file: string,
  args: string[],
  stdin: string | Buffer = '',
  env: NodeJS.ProcessEnv = process.env,
): Promise<CliResult> {
  const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  // A command that exits before reading its input (ctr task kill) makes the
  // write fail with EPIPE; its exit status is what the caller checks, as in
  // kapsel-cli.ts kapsel().
  child.stdin.on('error', () => undefined);
  child.stdin.end(stdin);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * A private dockerd (and the containerd it starts) with the flags that work
 * on these machines (no iptables, no bridge, vfs storage), kapsel added as a
 * runtime, and a busybox image imported. stop() leaves nothing behind.
 */
export class DockerDaemon {
  private constructor(
    readonly dir: string,
    private readonly proc: ChildProcessByStdio<null, Readable, Readable>,
  ) {}

  get socket(): string {
    return join(this.dir, 'docker.sock');
  }

  get containerdSocket(): string {
    return join(this.dir, 'exec/containerd/containerd.sock');
  }

  /** Where Docker's containerd shim keeps runtime state (its --root for runc and kapsel). */
  get runtimeRoot(): string {
    return join(this.dir, 'exec/runtime-runc/moby');
  }

  /**
   * With `netns`, dockerd runs inside that test namespace with its default
   * bridge and iptables, as a default install has them; without, it has no
   * network of its own (--bridge=none, no iptables) and containers use
   * `--network none`.
   */
  static async start(opts: { netns?: TestNetns } = {}): Promise<DockerDaemon> {
    // Short: the managed containerd's sockets live below it.
    const dir = mkdtempSync('/tmp/kd-');
    const network =
      opts.netns === undefined ? ['--iptables=false', '--ip6tables=false', '--bridge=none'] : [];
    const argv = [...(opts.netns?.enter ?? []), DOCKERD];
    const file = argv[0] ?? DOCKERD;
    const prefix = argv.slice(1);
    const proc = spawn(
      file,
      [
        ...prefix,
        ...network,
        '--storage-driver=vfs',
        `--data-root=${join(dir, 'data')}`,
        `--exec-root=${join(dir, 'exec')}`,
        `--pidfile=${join(dir, 'docker.pid')}`,
        '-H',
        `unix://${join(dir, 'docker.sock')}`,
        '--add-runtime',
        `kapsel=${KAPSEL}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let log = '';
    proc.stdout.on('data', (d: Buffer) => (log += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const d = new DockerDaemon(dir, proc);
    for (let i = 0; i < 300; i++) {
      if (proc.exitCode !== null) break;
      if ((await d.docker(['version'])).code === 0) return d;
      await sleep(100);
    }
    await d.stop();
    throw new Error(`dockerd did not start:\n${log.slice(-4000)}`);
  }

  docker(args: string[], stdin: string | Buffer = ''): Promise<CliResult> {
    return runCommand(DOCKER, ['-H', `unix://${this.socket}`, ...args], stdin);
  }

  ctr(args: string[]): Promise<CliResult> {
    return runCommand(CTR, ['-a', this.containerdSocket, '-n', 'kapsel-test', ...args]);
  }

  /** `docker import` of a fresh busybox rootfs, as IMAGE. */
  async importImage(): Promise<void> {
    const rootfs = makeBusyboxRootfs();
    // An image's / and /tmp as distributions ship them, so -u 1000 can use them
    // (mkdtemp makes the directory 0700).
    chmodSync(rootfs, 0o755);
    chmodSync(join(rootfs, 'tmp'), 0o1777);
    try {
      const tar = execFileSync('tar', ['-C', rootfs, '-c', '.'], { maxBuffer: 1 << 28 });
      const r = await this.docker(['import', '-', IMAGE], tar);
      if (r.code !== 0) throw new Error(`docker import: ${r.stderr}`);
    } finally {
      rmSync(rootfs, { recursive: true, force: true });
    }
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise((resolve) => this.proc.once('exit', resolve));
      this.proc.kill('SIGTERM');
      const done = await Promise.race([exited.then(() => true), sleep(30_000, false)]);
      if (!done) this.proc.kill('SIGKILL');
      await exited;
    }
    // dockerd unmounts its netns and shm mounts itself; this catches a crash,
    // and nothing is removed through a mount.
    for (const m of mountsUnder(this.dir)) {
      execFileSync('umount', ['--lazy', m], { stdio: 'ignore' });
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Mount points at or below `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/**
 * containers.conf(5) of a test's podman: the system's, with `[engine]
 * conmon_env_vars` added. Podman starts conmon, and conmon the OCI runtime,
 * with only those variables (default: PATH; libpod/oci_conmon_linux.go), so
 * a kapsel under podman did not see the run's KAPSEL_* variables: it made
 * its VM template in /var/lib/kapsel/templates instead of the run's
 * KAPSEL_TEMPLATE_DIR (test/support/template-dir-setup.ts), one left on the
 * machine per run. CONTAINERS_CONF replaces the system file, hence the copy.
 */
function podmanConf(env: NodeJS.ProcessEnv): string {
  const vars = [
    `PATH=${env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
    ...Object.entries(env)
      .filter(([k]) => k.startsWith('KAPSEL_'))
      .map(([k, v]) => `${k}=${v ?? ''}`),
  ];
  // TOML basic strings escape as JSON strings do.
  const line = `conmon_env_vars = ${JSON.stringify(vars)}`;
  const system = existsSync(SYSTEM_CONTAINERS_CONF)
    ? readFileSync(SYSTEM_CONTAINERS_CONF, 'utf8')
    : '';
  return /^\[engine\]$/m.test(system)
    ? system.replace(/^\[engine\]$/m, `[engine]\n${line}`)
    : `${system}\n[engine]\n${line}\n`;
}

const SYSTEM_CONTAINERS_CONF = '/usr/share/containers/containers.conf';

/**
 * Podman with a private store (vfs, cgroupfs, file events) and a busybox
 * image imported as IMAGE. With `netns` it runs inside that test namespace,
 * where its default network (CNI bridge, portmap) is made.
 */
export class PodmanStore {
  private constructor(
    readonly dir: string,
    private readonly enter: readonly string[],
  ) {}

  static async create(opts: { netns?: TestNetns } = {}): Promise<PodmanStore> {
    const p = new PodmanStore(mkdtempSync('/tmp/kpm-'), opts.netns?.enter ?? []);
    writeFileSync(p.containersConf, podmanConf(process.env));
    const rootfs = makeBusyboxRootfs();
    try {
      chmodSync(rootfs, 0o755);
      chmodSync(join(rootfs, 'tmp'), 0o1777);
      const tar = execFileSync('tar', ['-C', rootfs, '-c', '.'], { maxBuffer: 1 << 28 });
      const imported = await p.podmanWithInput(tar, 'import', '-', IMAGE);
      if (imported.code !== 0) throw new Error(`podman import: ${imported.stderr}`);
    } finally {
      rmSync(rootfs, { recursive: true, force: true });
    }
    return p;
  }

  podmanWithInput(input: Buffer | string, ...args: string[]): Promise<CliResult> {
    const argv = [
      ...this.enter,
      PODMAN,
      '--root',
      join(this.dir, 'root'),
      '--runroot',
      join(this.dir, 'run'),
      '--storage-driver',
      'vfs',
      '--cgroup-manager',
      'cgroupfs',
      '--events-backend',
      'file',
      ...args,
    ];
    return runCommand(argv[0] ?? PODMAN, argv.slice(1), input, {
      ...process.env,
      CONTAINERS_CONF: this.containersConf,
    });
  }

  private get containersConf(): string {
    return join(this.dir, 'containers.conf');
  }

  podman(...args: string[]): Promise<CliResult> {
    return this.podmanWithInput('', ...args);
  }

  /** Removes every container and image, then the store; nothing is removed through a mount. */
  async remove(): Promise<void> {
    await this.podman('rm', '-af');
    await this.podman('rmi', '-af');
    for (const m of mountsUnder(this.dir)) execFileSync('umount', ['--lazy', m]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
