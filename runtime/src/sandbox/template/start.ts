import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { appendFile, copyFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { AgentClient } from '../agent-client.js';
import type { Child } from '../vm/child.js';
import { resolveExecutable } from '../vm/child.js';
import { QEMU_BINARY, sharedFsOf, type VmConfig } from '../vm/config.js';
import { Vm } from '../vm/index.js';
import { chooseAccel } from '../vm/kvm.js';
import { vmDirLayout } from '../vm-dir.js';
import { discardTemplate, ensureTemplate } from './store.js';

/** Host random bytes the restored guest's RNG gets: two CRNG keys' worth. */
const ENTROPY_BYTES = 64;
const execFileAsync = promisify(execFile);
/** A tmpfs: a clone's RAM is memory, never written back to a disk. */
const CLONE_RAM_DIR = '/dev/shm';
/**
 * open(2)'s O_TMPFILE (__O_TMPFILE | O_DIRECTORY on x86-64 and arm64,
 * include/uapi/asm-generic/fcntl.h): an unnamed file in a directory. Node
 * has no constant for it; tmpfs has it since Linux 3.11.
 */
const O_TMPFILE = 0o20200000;
/** How long the guest may take to probe the hot-plugged share device. */
const SHARE_WAIT_MS = 30_000;

export interface TemplatedStart {
  vm: Vm;
  agent: AgentClient;
}

/**
 * Starts a VM of `cfg`'s shape from its template (made first if missing):
 * a new QEMU gets a sparse copy of the template's RAM file as its RAM (with
 * virtio-fs) or maps the template's file privately (with virtio-9p: pages
 * are copied only when the guest writes them), loads the saved device
 * state, the share's device is hot-plugged, the guest resumes; then the agent is
 * asked once (Check, on a fresh HTTP/2 connection) and RestoreGuest gives
 * the guest its own entropy and the wall clock and waits for the share.
 * Timeline marks: restoreBegun, restored, fsPlugged, resumed,
 * agentAnswered, guestRestored. A failure stops whatever was started and
 * removes the template (the next start makes it anew), unless it cannot be
 * the template's doing: the RAM copy failed, or QEMU was killed by a signal
 * (killedFromOutside).
 */
export async function startFromTemplate(
  cfg: VmConfig,
  templatesDir: string,
  log: Logger,
  opts: { signal?: AbortSignal; adopt?: (name: string, child: Child, rank?: number) => void },
): Promise<TemplatedStart> {
  // Decided once here and written into the shape: a state saved under TCG
  // does not load under KVM.
  const verdict = await chooseAccel({
    kernel: cfg.kernel,
    stateRoot: dirname(cfg.stateDir),
    log,
    ...(cfg.accel === undefined ? {} : { requested: cfg.accel }),
  });
  const shape: VmConfig = { ...cfg, accel: verdict.accel };
  const made = Date.now();
  const template = await ensureTemplate(
    templatesDir,
    shape,
    resolveExecutable(QEMU_BINARY),
    log,
    opts.signal,
  );
  if (template.made) log.info({ ms: Date.now() - made }, 'VM template made on first use');
  let vm: Vm | undefined;
  let qemu: Child | undefined;
  const adopt = (name: string, child: Child, rank?: number): void => {
    if (name === 'qemu') qemu = child;
    opts.adopt?.(name, child, rank);
  };
  const copyOnWrite = sharedFsOf(cfg) === 'virtio-9p';
  // Whether the clone's RAM is in place: at once when it maps the template's.
  let ramReady = copyOnWrite;
  // A virtio-fs clone's RAM: a sparse copy of the template's on a tmpfs
  // (only the pages the template touched are copied and take memory). It
  // never has a name: an O_TMPFILE file, which cp fills and QEMU maps
  // through our /proc/PID/fd link, is freed with the last process that
  // holds it, so a SIGKILL at any moment (of us, cp or QEMU) leaves nothing
  // in /dev/shm. A 9p clone maps the template's own file.
  let ramFd: number | undefined = copyOnWrite
    ? undefined
    : openSync(CLONE_RAM_DIR, O_TMPFILE | constants.O_RDWR, 0o600);
  const ramFile =
    ramFd === undefined ? template.layout.ram : `/proc/${String(process.pid)}/fd/${String(ramFd)}`;
  const closeRam = (): void => {
    if (ramFd !== undefined) closeSync(ramFd);
    ramFd = undefined;
  };
  try {
    if (!copyOnWrite) {
      const copyStart = Date.now();
      await execFileAsync('cp', ['--sparse=always', template.layout.ram, ramFile]);
      ramReady = true;
      log.debug({ ms: Date.now() - copyStart }, 'template RAM copied');
    }
    await seedConsole(template.layout.console, vmDirLayout(cfg.stateDir).console);
    vm = await Vm.boot(
      {
        ...shape,
        template: {
          role: 'restore',
          stateFile: template.layout.state,
          ramFile,
          ...(copyOnWrite ? { private: true } : {}),
        },
      },
      log,
      { adopt, ...(opts.signal === undefined ? {} : { signal: opts.signal }) },
    );
    // QEMU has it mapped now: its RAM lives as long as QEMU.
    closeRam();
    await vm.waitAgentReady(opts.signal);
    const agent = AgentClient.forSocket(vm.agentSocketPath);
    try {
      await agent.check();
      vm.timeline.mark('agentAnswered');
      const restored = await agent.restoreGuest({
        entropy: randomBytes(ENTROPY_BYTES),
        realtimeUs: Date.now() * 1000,
        shareWaitMs: cfg.share === undefined ? 0 : SHARE_WAIT_MS,
      });
      vm.timeline.mark('guestRestored');
      log.debug(
        {
          key: template.key,
          bootId: restored.bootId,
          clockBehindMs: Math.round((Date.now() * 1000 - restored.previousRealtimeUs) / 1000),
        },
        'guest restored from the VM template',
      );
    } catch (err) {
      agent.close();
      throw err;
    }
    return { vm, agent };
  } catch (err) {
    const innocent = ramReady ? await killedFromOutside(qemu) : 'copying its RAM failed';
    await vm?.shutdown(0);
    closeRam();
    if (opts.signal?.aborted) throw err;
    if (innocent !== undefined) {
      log.warn(
        { err, key: template.key },
        `start from the VM template failed: ${innocent}; keeping it`,
      );
    } else {
      log.warn(
        { err, key: template.key, console: vm?.console.tail(30) },
        'start from the VM template failed; removing it',
      );
      await discardTemplate(templatesDir, template.key);
    }
    throw err;
  }
}

/** How long a failed restore waits for its QEMU's exit to be seen. */
const EXIT_SEEN_MS = 500;

/**
 * Why a failed restore does not show the template is bad, or undefined if
 * it may: a QEMU killed by a signal we did not send (an operator's or the
 * OOM killer's SIGKILL, a fault of the host) says nothing of the template,
 * which then stays. A QEMU that refused the state (it exits with a status)
 * or a guest that does not answer is the template's doing: it is removed.
 */
async function killedFromOutside(qemu: Child | undefined): Promise<string | undefined> {
  if (qemu === undefined) return undefined;
  await Promise.race([qemu.exited, new Promise((r) => setTimeout(r, EXIT_SEEN_MS).unref())]);
  const signal = qemu.status?.signal;
  return signal ? `its QEMU was killed by ${signal}` : undefined;
}

/**
 * Starts the clone's console log with the template's: a clone is that
 * guest continued, and its boot (kernel, init, modules, the agent's start)
 * is only in the template's console. A fault's reason points at this log,
 * so it must hold the whole story. The clone's own lines follow a marker.
 */
async function seedConsole(templateConsole: string, cloneConsole: string): Promise<void> {
  await copyFile(templateConsole, cloneConsole).catch(() => undefined);
  await appendFile(
    cloneConsole,
    `--- the lines above are the boot of the VM template ${dirname(templateConsole)}; this VM was restored from it at ${new Date().toISOString()} ---\n`,
  );
}
