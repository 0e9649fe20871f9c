import { spawn, execFileSync, type ChildProcessByStdio } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeBusyboxRootfs } from './busybox.js';
import { CTR, mountsUnder, runCommand } from './engines.js';
import { processesMentioning, ROOT } from './kapsel-cli.js';
import type { CliResult } from './kapsel-cli.js';

export const CONTAINERD = '/usr/bin/containerd';
/** containerd finds containerd-shim-kapsel-v2 here, beside bin/kapsel. */
export const SHIM_BIN_DIR = join(ROOT, 'bin');
export const SHIM_IMAGE = 'docker.io/library/kbusybox:latest';

/** How start() may vary a private containerd (the CRI test's). */
export interface ContainerdOptions {
  /** Config lines after root/state/grpc/ttrpc, in place of the CRI plugin's disabling. */
  config?: (dir: string) => string[];
  /** argv prefix containerd runs under (`nsenter --net=...`: a test's network namespace). */
  enter?: string[];
}

/** An image's config (image-spec config.md `config`): what the archive's image runs. */
export interface ImageRun {
  Entrypoint?: string[];
  Cmd?: string[];
}

/**
 * A private containerd (own root, state, socket; the CRI plugin off) whose
 * PATH starts with bin/, so `--runtime io.containerd.kapsel.v2` finds our
 * shim; a busybox image imported from an OCI archive built here (no registry
 * and no Docker needed). stop() leaves nothing behind.
 */
export class PrivateContainerd {
  private constructor(
    readonly dir: string,
    private readonly proc: ChildProcessByStdio<null, Readable, Readable>,
    readonly logText: () => string,
  ) {}

  get address(): string {
    return join(this.dir, 'c.sock');
  }

  static async start(
    env: Record<string, string> = {},
    opts: ContainerdOptions = {},
  ): Promise<PrivateContainerd> {
    // Short: containerd's sockets and its shims' live below it.
    const dir = mkdtempSync('/tmp/kc-');
    writeFileSync(
      join(dir, 'config.toml'),
      [
        'version = 2',
        `root = "${join(dir, 'root')}"`,
        `state = "${join(dir, 'state')}"`,
        ...(opts.config === undefined ? ['disabled_plugins = ["io.containerd.grpc.v1.cri"]'] : []),
        '[grpc]',
        `  address = "${join(dir, 'c.sock')}"`,
        '[ttrpc]',
        `  address = "${join(dir, 'c.sock.ttrpc')}"`,
        ...(opts.config?.(dir) ?? []),
        '',
      ].join('\n'),
    );
    const argv = [...(opts.enter ?? []), CONTAINERD, '--config', join(dir, 'config.toml')];
    const proc = spawn(argv[0] ?? CONTAINERD, argv.slice(1), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env, PATH: `${SHIM_BIN_DIR}:${process.env['PATH'] ?? ''}` },
    });
    let log = '';
    proc.stdout.on('data', (d: Buffer) => (log += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const c = new PrivateContainerd(dir, proc, () => log);
    for (let i = 0; i < 300; i++) {
      if (proc.exitCode !== null) break;
      if ((await c.ctr(['version'])).code === 0) return c;
      await sleep(100);
    }
    await c.stop();
    throw new Error(`containerd did not start:\n${log.slice(-4000)}`);
  }

  ctr(args: string[], stdin: string | Buffer = ''): Promise<CliResult> {
    return runCommand(CTR, ['-a', this.address, '-n', 'kapsel-test', ...args], stdin);
  }

  /** Imports a busybox image as SHIM_IMAGE from an OCI image layout archive. */
  async importBusybox(): Promise<void> {
    await this.importImage('kapsel-test', SHIM_IMAGE);
  }

  /**
   * Imports a busybox image named `name` into containerd namespace `ns`
   * (`k8s.io` is the CRI plugin's), running `run` by default.
   */
  async importImage(ns: string, name: string, run: ImageRun = {}): Promise<void> {
    const tar = ociArchive(this.dir, name, run);
    const r = await runCommand(CTR, ['-a', this.address, '-n', ns, 'images', 'import', tar]);
    rmSync(tar, { force: true });
    if (r.code !== 0) throw new Error(`ctr images import ${name}: ${r.stderr}`);
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise((resolve) => this.proc.once('exit', resolve));
      this.proc.kill('SIGTERM');
      const done = await Promise.race([exited.then(() => true), sleep(20_000, false)]);
      if (!done) this.proc.kill('SIGKILL');
      await exited;
    }
    // Shims outlive containerd by design; a failed test may leave some.
    // SIGTERM lets a kapsel shim take its VM down.
    const shims = (): number[] =>
      processesMentioning(`-address ${this.address} `)
        .filter((p) => p.includes('containerd-shim'))
        .map((p) => parseInt(p, 10));
    const signal = (sig: NodeJS.Signals): void => {
      for (const pid of shims()) {
        try {
          process.kill(pid, sig);
        } catch {
          // Gone meanwhile.
        }
      }
    };
    signal('SIGTERM');
    for (let i = 0; i < 100 && shims().length > 0; i++) await sleep(100);
    signal('SIGKILL');
    for (const m of mountsUnder(this.dir)) {
      execFileSync('umount', ['--lazy', m], { stdio: 'ignore' });
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * An OCI image layout archive (image-spec image-layout.md) of one busybox
 * layer, named `name` by the annotation `ctr images import` reads.
 */
function ociArchive(workDir: string, name: string, run: ImageRun): string {
  const dir = join(workDir, 'oci');
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (data: Buffer): { digest: string; size: number } => {
    const hex = createHash('sha256').update(data).digest('hex');
    writeFileSync(join(blobs, hex), data);
    return { digest: `sha256:${hex}`, size: data.length };
  };
  const rootfs = makeBusyboxRootfs();
  let layer: Buffer;
  try {
    chmodSync(rootfs, 0o755);
    chmodSync(join(rootfs, 'tmp'), 0o1777);
    layer = execFileSync('tar', ['-C', rootfs, '-c', '.'], { maxBuffer: 1 << 28 });
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
  const layerDesc = put(layer);
  const config = put(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'], WorkingDir: '/', ...run },
        rootfs: { type: 'layers', diff_ids: [layerDesc.digest] },
      }),
    ),
  );
  const manifest = put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layerDesc }],
      }),
    ),
  );
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifest,
          annotations: {
            'io.containerd.image.name': name,
            'org.opencontainers.image.ref.name': 'latest',
          },
        },
      ],
    }),
  );
  const tar = join(workDir, 'busybox-oci.tar');
  execFileSync('tar', ['-C', dir, '-cf', tar, '.']);
  rmSync(dir, { recursive: true, force: true });
  return tar;
}
