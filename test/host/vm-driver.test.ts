import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  GuestConsole,
  Vm,
  VmError,
  chooseAccel,
  type VmConfig,
} from '../../runtime/src/sandbox/vm/index.js';

/*
 * Real QEMU, real guest. The guest is the benchmark floor image
 * (build/guest/floor-initrd.img: mounts, loads the virtio modules, opens the
 * agent port, powers off), or any guest that does the same, given as
 * KAPSEL_TEST_KERNEL and KAPSEL_TEST_INITRD. Under TCG a boot takes 2-4 s.
 */
const GUEST_DIR = resolve(import.meta.dirname, '../../build/guest');
const kernel = process.env['KAPSEL_TEST_KERNEL'] ?? join(GUEST_DIR, 'vmlinuz');
const initrd = process.env['KAPSEL_TEST_INITRD'] ?? join(GUEST_DIR, 'floor-initrd.img');
const noGuest = [kernel, initrd].find((f) => !existsSync(f));
const noQemu = ['/usr/bin/qemu-system-x86_64', '/usr/lib/qemu/virtiofsd'].find(
  (f) => !existsSync(f),
);
const isRoot = process.getuid?.() === 0;
const skipReason = !isRoot
  ? 'needs root (virtiofsd)'
  : noQemu
    ? `${noQemu} is missing (apt-get install qemu-system-x86)`
    : noGuest
      ? `no guest image: ${noGuest} (npm run build:image, or set KAPSEL_TEST_KERNEL/KAPSEL_TEST_INITRD)`
      : undefined;

const log = pino({ level: process.env['KAPSEL_TEST_LOG'] ?? 'silent' });

/** QEMU and virtiofsd processes descended from this test process. */
function helperProcesses(): { pid: number; comm: string }[] {
  const parent = new Map<number, number>();
  const comm = new Map<number, string>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const fields = stat.slice(close + 2).split(' ');
      parent.set(Number(name), Number(fields[1]));
      comm.set(Number(name), stat.slice(stat.indexOf('(') + 1, close));
    } catch {
      // gone meanwhile
    }
  }
  const isDescendant = (pid: number): boolean => {
    for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) {
      if (p === process.pid) return true;
    }
    return false;
  };
  return [...comm]
    .filter(([pid, c]) => /^(qemu-system|virtiofsd)/.test(c) && isDescendant(pid))
    .map(([pid, c]) => ({ pid, comm: c }));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function sockets(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.sock') || f.endsWith('.pid'));
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => {
      clearTimeout(timer);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`${what}: no result after ${ms} ms`));
      }, ms);
    }),
  ]);
}

describe.skipIf(skipReason !== undefined)(
  `vm driver with a real qemu${skipReason ? ` (skipped: ${skipReason})` : ''}`,
  () => {
    let root: string;
    let n = 0;
    const vms: Vm[] = [];

    const config = (extra: Partial<VmConfig> = {}): VmConfig => {
      const stateDir = join(root, `vm${++n}`);
      mkdirSync(stateDir);
      return { stateDir, kernel, initrd, memoryMiB: 256, cpus: 1, ...extra };
    };
    const boot = async (cfg: VmConfig): Promise<Vm> => {
      const vm = await Vm.boot(cfg, log, { stateRoot: root });
      vms.push(vm);
      return vm;
    };

    beforeAll(() => {
      root = mkdtempSync(join(tmpdir(), 'kapsel-vm-test-'));
    });
    afterEach(async () => {
      // Whatever a failed test left running, by pid: others run QEMU here too.
      await Promise.all(vms.splice(0).map((vm) => vm.shutdown(0)));
      for (const p of helperProcesses()) process.kill(p.pid, 'SIGKILL');
    });
    afterAll(() => {
      rmSync(root, { recursive: true, force: true });
    });

    it('boots, sees the agent port open, lets the guest power off, leaves nothing behind', async () => {
      const cfg = config();
      const vm = await boot(cfg);
      expect(alive(vm.pid)).toBe(true);
      expect(vm.timeline.has('qmpReady')).toBe(true);
      await withTimeout(vm.waitAgentReady(), 45_000, 'waitAgentReady');
      expect(vm.agentPortOpen).toBe(true);
      // The floor init powers off after opening the port.
      const status = await withTimeout(vm.exited, 20_000, 'guest power off');
      expect(status).toEqual({ code: 0, signal: null });
      await vm.shutdown(5000);

      const t = vm.timeline.toJSON();
      console.info(`boot timeline (ms since spawn, accel ${vm.accel}):`, t);
      const order = [
        'spawned',
        'qmpReady',
        'resumed',
        'firstConsoleLine',
        'agentPortOpen',
        'exited',
      ];
      const at = order.map((name) => t[name]);
      expect(at.every((x) => x !== undefined)).toBe(true);
      expect([...at].sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual(at);

      expect(alive(vm.pid)).toBe(false);
      expect(helperProcesses()).toEqual([]);
      expect(sockets(cfg.stateDir)).toEqual([]);
      const consoleLog = readFileSync(join(cfg.stateDir, 'console.log'), 'utf8');
      expect(consoleLog).toMatch(/^\[\d+\.\d{6}\] /m);
      expect(consoleLog).toMatch(/reboot: Power down/);
    });

    it('stops a running guest over qmp quit when it does not exit in time', async () => {
      const cfg = config();
      const vm = await boot(cfg);
      const status = await vm.shutdown(0);
      expect(status.signal).toBeNull();
      expect(alive(vm.pid)).toBe(false);
      expect(helperProcesses()).toEqual([]);
      expect(sockets(cfg.stateDir)).toEqual([]);
      // A second shutdown is the same one.
      await expect(vm.shutdown(0)).resolves.toEqual(status);
    });

    it('starts virtiofsd for a share, qemu connects to it, and both are gone after shutdown', async () => {
      const shared = join(root, 'shared');
      mkdirSync(shared, { recursive: true });
      await writeFile(join(shared, 'hello'), 'hi\n');
      const cfg = config({
        share: { dir: shared, tag: 'kshare' },
        // Test guests that know this parameter mount the share and list it.
        kernelParams: ['kapsel.share=kshare'],
      });
      const vm = await boot(cfg);
      const vfsPid = vm.virtiofsdPid;
      expect(vfsPid).toBeDefined();
      // QEMU does not get as far as QMP unless it connected to the vhost-user socket.
      expect(alive(vfsPid ?? 0)).toBe(true);
      expect(existsSync(join(cfg.stateDir, 'vfs.sock'))).toBe(true);
      await withTimeout(vm.waitAgentReady(), 45_000, 'waitAgentReady');
      // virtiofsd forks once QEMU connects (its namespace sandbox); a child
      // orphaned to init would no longer show up as our descendant.
      const running = helperProcesses();
      expect(running.map((p) => p.pid)).toContain(vfsPid);
      await vm.shutdown(20_000);
      expect(running.filter((p) => alive(p.pid))).toEqual([]);
      // The floor guest ignores the share; a test guest that mounts it says so.
      const consoleLog = readFileSync(join(cfg.stateDir, 'console.log'), 'utf8');
      if (consoleLog.includes('share kshare')) expect(consoleLog).toMatch(/share kshare: hello/);
      expect(alive(vfsPid ?? 0)).toBe(false);
      expect(helperProcesses()).toEqual([]);
      expect(sockets(cfg.stateDir)).toEqual([]);
    });

    it('rejects a missing kernel naming the path, and starts nothing', async () => {
      const missing = join(root, 'no-such-vmlinuz');
      const cfg = config({ kernel: missing, share: { dir: root, tag: 'x' } });
      const err = await Vm.boot(cfg, log, { stateRoot: root }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(VmError);
      expect((err as Error).message).toContain(missing);
      expect((err as Error).message).toMatch(/no such file/);
      expect(helperProcesses()).toEqual([]);
      expect(sockets(cfg.stateDir)).toEqual([]);
    });

    it('fails fast with qemu stderr when qemu cannot load the kernel, and cleans up halfway', async () => {
      const bogus = join(root, 'not-a-kernel');
      await writeFile(bogus, 'this is not a kernel\n');
      const shared = join(root, 'shared2');
      mkdirSync(shared, { recursive: true });
      const cfg = config({ kernel: bogus, accel: 'tcg', share: { dir: shared, tag: 'x' } });
      const t0 = Date.now();
      const err = await Vm.boot(cfg, log, { stateRoot: root }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(err).toBeInstanceOf(VmError);
      const msg = (err as Error).message;
      expect(msg).toMatch(/^start qemu for /);
      expect(msg).toMatch(/qemu stderr:/);
      expect(msg).toMatch(/kernel/i);
      expect(helperProcesses()).toEqual([]);
      expect(sockets(cfg.stateDir)).toEqual([]);
    });

    it('an aborted boot stops what it started', async () => {
      const shared = join(root, 'shared3');
      mkdirSync(shared, { recursive: true });
      for (const ms of [1, 15, 40]) {
        const cfg = config({ share: { dir: shared, tag: 'x' } });
        const booted = await Vm.boot(cfg, log, {
          stateRoot: root,
          signal: AbortSignal.timeout(ms),
        }).catch((e: unknown) => e);
        // Late enough, the boot wins the race; then it is an ordinary VM.
        if (booted instanceof Vm) await booted.shutdown(0);
        else expect(booted).toBeInstanceOf(Error);
        expect(helperProcesses()).toEqual([]);
        expect(sockets(cfg.stateDir)).toEqual([]);
      }
    });

    it('rejects waitAgentReady with the last console lines when the guest dies first', async () => {
      const junk = join(root, 'junk-initrd');
      await writeFile(junk, Buffer.alloc(4096, 0x5a));
      const cfg = config({ initrd: junk });
      const vm = await boot(cfg);
      const err = await withTimeout(vm.waitAgentReady(), 45_000, 'waitAgentReady').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(VmError);
      const msg = (err as Error).message;
      expect(msg).toMatch(/^wait for the guest agent in /);
      expect(msg).toContain('last guest console lines');
      expect(msg).toMatch(/Kernel panic/);
      await vm.shutdown(0);
      expect(helperProcesses()).toEqual([]);
    });

    it('probes kvm once and caches the verdict; the configured accel overrides it', async () => {
      const stateRoot = join(root, 'probe');
      const first = await chooseAccel({ kernel, stateRoot, log });
      expect(first.source).toBe('probe');
      expect(existsSync(join(stateRoot, 'accel-probe.json'))).toBe(true);
      const second = await chooseAccel({ kernel, stateRoot, log });
      expect(second).toMatchObject({ source: 'cache', accel: first.accel });
      const forced = await chooseAccel({ kernel, stateRoot, log, requested: 'tcg' });
      expect(forced).toMatchObject({ source: 'config', accel: 'tcg' });
      expect(helperProcesses()).toEqual([]);
    });
  },
);

describe('guest console', () => {
  it('splits, cleans and timestamps lines and lets callers wait for one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kapsel-console-'));
    try {
      const input = new PassThrough();
      const con = new GuestConsole(input, join(dir, 'console.log'));
      const started = con.waitFor(/kapsel-init: started/);
      input.write('\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1)\r\nBooting from ROM..');
      input.write('\x1bc\x1b[?7l\x1b[2Jkapsel-init: sta');
      input.write('rted\r\nlast words without newline');
      const line = await started;
      expect(line.text).toBe('kapsel-init: started');
      input.end();
      await con.done;
      expect(con.tail()).toEqual([
        'SeaBIOS (version 1)',
        'Booting from ROM..',
        'kapsel-init: started',
        'last words without newline',
      ]);
      const logged = readFileSync(join(dir, 'console.log'), 'utf8').trimEnd().split('\n');
      expect(logged).toHaveLength(4);
      expect(logged[2]).toMatch(/^\[\d+\.\d{6}\] kapsel-init: started$/);
      const past = await con.waitFor(/^Booting/g, { includeTail: true });
      expect(past.text).toBe('Booting from ROM..');
      await expect(con.waitFor(/x/)).rejects.toThrow(/closed/);
      await expect(con.waitFor(/x/, { signal: AbortSignal.abort() })).rejects.toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
