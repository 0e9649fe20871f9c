import { access, constants, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../../sys/atomic-file.js';
import { Child, describeExit } from './child.js';
import { QEMU_BINARY, type Accel } from './config.js';
import { mkdirAll } from '../../../../oci/fs/mkdir-all.js';

/*
 * Whether KVM really works cannot be read off /dev/kvm. On this machine kind
 * /dev/kvm opens read-write and QEMU started with `-accel kvm -S` answers
 * `query-kvm` with {enabled: true, present: true} in 75 ms, yet it is a nested
 * PVM backend that cannot run an ordinary guest:
 *   - `-cpu host` or `-cpu max`: QEMU aborts within 30 ms with
 *     "failed to set MSR 0x10a to 0x69 ... kvm_buf_set_msrs: Assertion failed";
 *   - `-cpu qemu64`: SeaBIOS runs and prints, then the Linux kernel hangs
 *     forever at 100% host system time, printing nothing.
 * So the probe boots the very kernel we will use, with the very -cpu we will
 * use, with no initrd: the kernel runs all its initcalls, finds no root file
 * system and panics; `panic=-1` plus `-no-reboot` make QEMU exit 0. KVM is
 * usable iff that happens, and the panic text is on the console, within
 * PROBE_TIMEOUT_MS. A working KVM takes a few hundred ms for it (TCG 1.8 s
 * here); here the probe fails in ~30 ms. The verdict is cached per machine
 * boot (keyed by /proc/sys/kernel/random/boot_id) under the state root.
 */

const PROBE_TIMEOUT_MS = 2000;
const CACHE_FILE = 'accel-probe.json';
const BOOT_ID = '/proc/sys/kernel/random/boot_id';

export interface KvmProbeResult {
  usable: boolean;
  reason: string;
  ms: number;
}

export interface AccelVerdict {
  accel: Accel;
  reason: string;
  source: 'config' | 'cache' | 'probe';
}

interface CacheRecord {
  bootId: string;
  kernel: string;
  usable: boolean;
  reason: string;
}

/** Boots `kernel` under KVM without an initrd and checks that it reaches its panic. */
export async function probeKvm(
  kernel: string,
  opts: { qemu?: string; timeoutMs?: number; device?: string } = {},
): Promise<KvmProbeResult> {
  const t0 = performance.now();
  const done = (usable: boolean, reason: string): KvmProbeResult => ({
    usable,
    reason,
    ms: Math.round(performance.now() - t0),
  });
  const device = opts.device ?? '/dev/kvm';
  try {
    await (await open(device, 'r+')).close();
  } catch (err) {
    return done(false, `open ${device}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const timeoutMs = opts.timeoutMs ?? PROBE_TIMEOUT_MS;
  const args = [
    ...['-M', 'q35', '-accel', 'kvm', '-cpu', 'host', '-m', '128', '-smp', '1'],
    ...['-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot'],
    ...['-kernel', kernel, '-append', 'console=ttyS0 panic=-1 quiet', '-serial', 'stdio'],
  ];
  let child: Child;
  try {
    child = await Child.start(opts.qemu ?? QEMU_BINARY, args, { stdout: 'pipe' });
  } catch (err) {
    return done(false, `start ${opts.qemu ?? QEMU_BINARY}: ${(err as Error).message}`);
  }
  let out = '';
  child.proc.stdout?.setEncoding('utf8');
  child.proc.stdout?.on('data', (c: string) => {
    out = (out + c).slice(-8192);
  });
  if (!(await child.waitExit(timeoutMs))) {
    child.proc.kill('SIGKILL');
    await child.exited;
    return done(false, `a kvm guest did not reach its kernel panic within ${timeoutMs} ms`);
  }
  const status = await child.exited;
  if (status.code === 0 && out.includes('Kernel panic')) {
    return done(true, 'a kvm guest booted its kernel to the expected panic');
  }
  const why = child.stderr.trim().split('\n').slice(-2).join('; ');
  return done(false, `qemu -accel kvm ${describeExit(status)}${why ? `: ${why}` : ''}`);
}

async function currentBootId(): Promise<string> {
  try {
    return (await readFile(BOOT_ID, 'utf8')).trim();
  } catch {
    return 'unknown';
  }
}

let tcgWarned = false;

export interface ChooseAccelOptions {
  kernel: string;
  stateRoot: string;
  log: Logger;
  /** hypervisor.accel of the configuration (KAPSEL_ACCEL), unless auto. */
  requested?: Accel | undefined;
  qemu?: string;
}

/**
 * Picks the accelerator: `requested` (the VM config, from hypervisor.accel),
 * else the cached or fresh probe verdict. Under TCG it warns once per process.
 */
export async function chooseAccel(opts: ChooseAccelOptions): Promise<AccelVerdict> {
  const verdict = await decide(opts);
  if (verdict.accel === 'tcg' && !tcgWarned) {
    tcgWarned = true;
    opts.log.warn(
      { accel: 'tcg', reason: verdict.reason, source: verdict.source },
      'KVM is not usable, guests run under TCG software emulation (several times slower); set accel = "kvm" in [hypervisor] of the configuration (or KAPSEL_ACCEL=kvm) to force KVM',
    );
  } else {
    opts.log.debug({ ...verdict }, 'accelerator chosen');
  }
  return verdict;
}

async function decide(opts: ChooseAccelOptions): Promise<AccelVerdict> {
  if (opts.requested)
    return { accel: opts.requested, reason: 'set in the configuration', source: 'config' };
  // A probe with a kernel that cannot be read would cache a wrong verdict.
  await access(opts.kernel, constants.R_OK);
  const bootId = await currentBootId();
  const file = join(opts.stateRoot, CACHE_FILE);
  try {
    const rec = JSON.parse(await readFile(file, 'utf8')) as Partial<CacheRecord>;
    if (rec.bootId === bootId && typeof rec.usable === 'boolean') {
      return {
        accel: rec.usable ? 'kvm' : 'tcg',
        reason: String(rec.reason),
        source: 'cache',
      };
    }
  } catch {
    // no cache yet, or unreadable: probe
  }
  const r = await probeKvm(opts.kernel, opts.qemu === undefined ? {} : { qemu: opts.qemu });
  opts.log.info({ usable: r.usable, reason: r.reason, ms: r.ms }, 'kvm probe');
  try {
    await mkdirAll(opts.stateRoot, 0o711);
    const rec: CacheRecord = { bootId, kernel: opts.kernel, usable: r.usable, reason: r.reason };
    await writeFileAtomic(file, `${JSON.stringify(rec)}\n`);
  } catch (err) {
    opts.log.debug({ err }, 'cannot cache the kvm probe verdict');
  }
  return { accel: r.usable ? 'kvm' : 'tcg', reason: r.reason, source: 'probe' };
}
