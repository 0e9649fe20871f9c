import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { SHIM_PROGRAM } from '../shim/spawn.js';
import { startDetached } from '../sys/detached.js';
import { RuntimeError } from '../sys/errors.js';
import { isAlive, killQuietly, readPid } from '../sys/pids.js';
import type { HostCgroupPlan } from './host-cgroup/apply.js';
import type { VmSize } from './sizing.js';
import { keepBootLogs } from './boot-logs.js';
import { cleanupVmDir, vmDirLayout } from './vm-dir.js';
import { mkdirAll } from '../../../oci/fs/mkdir-all.js';

/*
 * The sandbox process (`kapsel __monitor`, serve.ts) seen from the CLI: start
 * it, ask whether it runs, wait for it to end. One per VM.
 */

/**
 * Boots a sandbox: makes its VM directory, starts its process there (inside
 * the host network namespace `enter` puts it in, see network/netns.ts) and
 * returns the process's pid once the agent answers through it. A sandbox
 * process not ready by its deadline (sys/ready-deadline.ts) is killed; the
 * error names the VM's logs, kept (boot-logs.ts) for stopSandbox removes
 * the directory.
 */
export async function startSandbox(
  root: string,
  sandboxId: string,
  vmDir: string,
  debug: boolean,
  size: VmSize,
  enter: readonly string[] = [],
  hostCgroup?: HostCgroupPlan,
): Promise<number> {
  const layout = vmDirLayout(vmDir);
  try {
    await mkdir(vmDir, { recursive: false, mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new RuntimeError(`sandbox ${sandboxId} exists already`, 1, { cause: err });
    }
    await mkdirAll(vmDir, 0o700);
  }
  if (hostCgroup !== undefined) await writeFile(layout.hostCgroup, JSON.stringify(hostCgroup));
  const logFd = openSync(layout.log, 'a');
  try {
    return await startDetached(
      [
        '--root',
        root,
        ...(debug ? ['--debug'] : []),
        '__monitor',
        '--memory-mib',
        String(size.memoryMiB),
        '--cpus',
        String(size.cpus),
        // An id may start with '-' (runc takes it): never read it as an option.
        '--',
        sandboxId,
      ],
      ['ignore', logFd, logFd],
      'start the sandbox',
      enter,
    );
  } catch (err) {
    // Killed at the deadline, it kept nothing itself (host.ts boot does).
    const kept = await keepBootLogs(vmDir);
    if (kept === '' || !(err instanceof Error)) throw err;
    throw new RuntimeError(`${err.message}; ${kept}`, 1, { cause: err });
  } finally {
    closeSync(logFd);
  }
}

/**
 * The pid of the sandbox process of `vmDir` while it runs (a pod's container
 * joins only a running one), else undefined.
 */
export async function sandboxPid(vmDir: string): Promise<number | undefined> {
  const pid = await readPid(vmDirLayout(vmDir).pidFile);
  return pid !== undefined && isAlive(pid) ? pid : undefined;
}

/** How long a sandbox process may take to end by itself before it is killed. */
const STOP_WAIT_MS = 15_000;
/** The same with --force: `delete --force` must end within seconds whatever the state. */
const FORCE_STOP_WAIT_MS = 3000;

/**
 * Waits for a sandbox's process to finish (it does with its last container),
 * killing it if it does not, and then every process it supervised (by the
 * pids it recorded, sandbox/supervisor.ts: its QEMU and virtiofsd die with it
 * through PR_SET_PDEATHSIG, this is for the case that failed too); then
 * cleans the VM directory up. `force` waits briefly, `hung` (it let a call
 * run out its deadline) not at all.
 */
export async function stopSandbox(
  vmDir: string,
  log: Logger,
  force = false,
  hung = false,
): Promise<void> {
  const layout = vmDirLayout(vmDir);
  const pid = await readPid(layout.pidFile);
  const waitMs = hung ? 0 : force ? FORCE_STOP_WAIT_MS : STOP_WAIT_MS;
  for (let t = 0; t < waitMs && isAlive(pid); t += 100) await sleep(100);
  if (pid !== undefined && isAlive(pid) && cmdlineOf(pid).includes('__monitor')) {
    log.warn({ pid }, 'sandbox monitor did not stop; killing it');
    killQuietly(pid);
    for (let i = 0; i < 20 && isAlive(pid); i++) await sleep(100);
  }
  const children = await supervisedPids(layout.pids);
  const qemu = await readPid(layout.pidfile);
  if (qemu !== undefined) children.push(qemu);
  // Helpers' own children are not in the pids file: virtiofsd's sandboxed
  // second process gets only a SIGTERM by PR_SET_PDEATHSIG, which waits
  // while it is stopped (SIGSTOP), and it kept the host cgroup busy. Shims
  // are left to end by themselves (255, what an engine reads).
  children.push(...pidsNaming(vmDir).filter((p) => !cmdlineOf(p).includes(SHIM_PROGRAM)));
  // Only processes that still name this VM directory: a pid may be reused.
  const ours = [...new Set(children)].filter((p) => isAlive(p) && cmdlineOf(p).includes(vmDir));
  for (const p of ours) {
    // Usually one on its way out: PR_SET_PDEATHSIG is delivered, not instant.
    log.debug({ pid: p }, 'a process of the sandbox outlived it; killing it');
    killQuietly(p);
  }
  for (let i = 0; i < 20 && ours.some((p) => isAlive(p)); i++) await sleep(100);
  await cleanupVmDir(vmDir, log);
}

async function supervisedPids(file: string): Promise<number[]> {
  try {
    const list = JSON.parse(await readFile(file, 'utf8')) as { pid?: unknown }[];
    return list.map((e) => e.pid).filter((p): p is number => typeof p === 'number' && p > 0);
  } catch {
    return [];
  }
}

/** Every process whose command line mentions `needle`. */
function pidsNaming(needle: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  return entries
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((p) => p !== process.pid && cmdlineOf(p).includes(needle));
}

function cmdlineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}
