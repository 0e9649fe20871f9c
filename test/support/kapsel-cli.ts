import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import {
  closeSync,
  existsSync,
  openSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Spec } from '../../oci/spec.js';

export const ROOT = join(import.meta.dirname, '..', '..');
export const KAPSEL = join(ROOT, 'bin', 'kapsel');
export const GUEST_DIR = join(ROOT, 'build', 'guest');
export const DEFAULT_BUNDLE = join(ROOT, 'build', 'bundle');

/** Why VM tests cannot run here, or undefined when they can. */
export function vmMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  for (const f of [
    join(ROOT, 'build/dist/kapsel.mjs'),
    join(GUEST_DIR, 'vmlinuz'),
    join(GUEST_DIR, 'initrd.img'),
    join(DEFAULT_BUNDLE, 'config.json'),
  ]) {
    if (!existsSync(f)) return `${f} missing (run scripts/setup.sh)`;
  }
  return undefined;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunningCli {
  child: ChildProcessWithoutNullStreams;
  done: Promise<CliResult>;
}

/** Starts bin/kapsel by absolute path from another directory, as Docker does. */
export function startKapsel(args: string[], cwd = tmpdir()): RunningCli {
  const child = spawn(KAPSEL, args, { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done };
}

/** Runs bin/kapsel to the end with `stdin` as its whole input. */
export function kapsel(args: string[], stdin = ''): Promise<CliResult> {
  const { child, done } = startKapsel(args);
  // A CLI that exits before reading its (empty) stdin makes the write fail
  // with EPIPE; its exit status is what the caller checks.
  child.stdin.on('error', () => undefined);
  child.stdin.end(stdin);
  return done;
}

const madeBundles: string[] = [];

/**
 * A bundle dir whose config.json is the default one with changes, rootfs
 * shared. removeBundles() deletes every one made so far.
 */
export function makeBundle(edit: (spec: Spec) => void): string {
  const dir = mkdtempSync(join(tmpdir(), 'kapsel-bundle-'));
  madeBundles.push(dir);
  mkdirSync(dir, { recursive: true });
  const spec = JSON.parse(readFileSync(join(DEFAULT_BUNDLE, 'config.json'), 'utf8')) as Spec;
  spec.root = { path: join(DEFAULT_BUNDLE, 'rootfs'), readonly: true };
  edit(spec);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(spec, null, 2));
  return dir;
}

export function removeBundles(): void {
  for (const dir of madeBundles.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Host processes whose command line mentions `needle` (our QEMU, virtiofsd...). */
export function processesMentioning(needle: string): string[] {
  const out: string[] = [];
  for (const pid of readdirNumeric('/proc')) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmd.includes(needle) && pid !== process.pid) out.push(`${pid}: ${cmd}`);
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

function readdirNumeric(dir: string): number[] {
  return readdirSync(dir)
    .filter((e) => /^\d+$/.test(e))
    .map(Number);
}

/**
 * Runs bin/kapsel with stdout and stderr on files and resolves when it
 * exits: `create` and `run -d` leave a shim holding their stdio (as with
 * containerd's fifos), so waiting for the streams to close would wait for
 * the container.
 */
export async function kapselToFiles(
  args: string[],
  dir: string,
): Promise<{ code: number | null; stdout: () => string; stderr: () => string }> {
  const out = join(dir, `out-${Date.now()}-${Math.random().toString(16).slice(2)}`);
  const err = `${out}.err`;
  const outFd = openSync(out, 'w');
  const errFd = openSync(err, 'w');
  const child = spawn(KAPSEL, args, { cwd: tmpdir(), stdio: ['ignore', outFd, errFd] });
  closeSync(outFd);
  closeSync(errFd);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (c) => {
      resolve(c);
    });
  });
  return {
    code,
    stdout: () => readFileSync(out, 'utf8'),
    stderr: () => readFileSync(err, 'utf8'),
  };
}
