import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Spec, State } from '../../oci/spec.js';
import { vmDirLayout, vmDirOf } from '../../runtime/src/sandbox/vm-dir.js';
import { SHIM_PROGRAM } from '../../runtime/src/shim/spawn.js';
import {
  KAPSEL,
  kapsel,
  kapselToFiles,
  makeBundle,
  processesMentioning,
  removeBundles,
  ROOT,
  startKapsel,
  vmMissing,
} from '../support/kapsel-cli.js';
import { becomeSubreaper, reap, reapZombies, type Reaped } from '../support/reaper.js';

// Issue 11's table of faults, each injected into a real sandbox: the
// container ends stopped with a reason naming the cause, the shim exits
// 255 (the guest process's end is unknown), `delete --force` is prompt and
// nothing is left. This process is a child subreaper, so the shims that
// `kapsel run -d` leaves are reparented here and their exit status is seen
// as containerd would see it.

const skip = vmMissing();
/** `delete --force` must end within this, whatever the state (issue 11: "a few seconds"). */
const PROMPT_DELETE_MS = 5000;

describe.skipIf(skip !== undefined)(
  `faults end in a clean, explained stop${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const root = mkdtempSync(join(tmpdir(), 'kapsel-faults-'));
    const out = mkdtempSync(join(tmpdir(), 'kapsel-faults-out-'));
    const k = (args: string[], stdin = ''): ReturnType<typeof kapsel> =>
      kapsel(['--root', root, ...args], stdin);

    beforeAll(() => {
      becomeSubreaper();
    });

    afterAll(async () => {
      for (const id of readdirSync(root).filter((e) => e !== '.vm')) {
        await k(['delete', '--force', '--', id]);
      }
      reapZombies();
      removeBundles();
      rmSync(root, { recursive: true, force: true });
      rmSync(out, { recursive: true, force: true });
    });

    const sleeper = (args = ['sleep', '3600'], edit?: (s: Spec) => void): string =>
      makeBundle((spec) => {
        if (spec.process === undefined) throw new Error('the default bundle has no process');
        spec.process = { ...spec.process, args };
        edit?.(spec);
      });

    /** `run -d`; the shim's pid from `state`. */
    async function runDetached(id: string, bundle: string): Promise<State> {
      const r = await kapselToFiles(['--root', root, 'run', '-d', '-b', bundle, '--', id], out);
      expect(r.stderr()).not.toMatch(/error/);
      expect(r.code).toBe(0);
      return state(id);
    }

    async function state(id: string): Promise<State> {
      const s = await k(['state', '--', id]);
      expect(s.stderr).toBe('');
      return JSON.parse(s.stdout) as State;
    }

    async function waitStopped(id: string): Promise<State> {
      for (let i = 0; i < 240; i++) {
        const s = await state(id);
        if (s.status === 'stopped') return s;
        await sleep(250);
      }
      throw new Error(`${id} did not stop`);
    }

    const reasonOf = (s: State): string => s.annotations?.['io.kapsel.stop-reason'] ?? '';

    /** The sandbox's host processes by name, as its supervisor recorded them. */
    function supervised(id: string): Record<string, number> {
      const list = JSON.parse(readFileSync(vmDirLayout(vmDirOf(root, id)).pids, 'utf8')) as {
        name: string;
        pid: number;
      }[];
      return Object.fromEntries(list.map((e) => [e.name, e.pid]));
    }

    function childrenOf(pid: number): number[] {
      return readdirSync('/proc')
        .filter((e) => /^\d+$/.test(e))
        .map(Number)
        .filter((p) => {
          try {
            const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
            return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
          } catch {
            return false;
          }
        });
    }

    /** A prompt `delete --force`, then nothing of the container anywhere on the host. */
    async function deleteAndExpectNothingLeft(
      id: string,
      warning = /^$/,
      withinMs = PROMPT_DELETE_MS,
    ): Promise<void> {
      const cgroups = hostCgroupsOf(id);
      const t0 = Date.now();
      const d = await k(['delete', '--force', '--', id]);
      expect(d.stderr).toMatch(warning);
      expect(d.code).toBe(0);
      expect(Date.now() - t0).toBeLessThan(withinMs);
      const vmDir = vmDirOf(root, id);
      expect(processesMentioning(vmDir)).toEqual([]);
      expect(processesMentioning(join(root, id))).toEqual([]);
      expect(processesMentioning(` ${id}`).filter((p) => p.includes(root))).toEqual([]);
      expect(existsSync(join(root, id))).toBe(false);
      expect(existsSync(vmDir)).toBe(false);
      expect(readFileSync('/proc/mounts', 'utf8')).not.toContain(root);
      expect(cgroups.filter((d) => existsSync(d))).toEqual([]);
    }

    /** The host cgroup directories kapsel made for the container, from its state on disk. */
    function hostCgroupsOf(id: string): string[] {
      try {
        const r = JSON.parse(readFileSync(join(root, id, 'state.json'), 'utf8')) as {
          hostCgroup?: { dirs: { path: string; created: boolean }[] };
        };
        return (r.hostCgroup?.dirs ?? []).filter((d) => d.created).map((d) => d.path);
      } catch {
        return [];
      }
    }

    /** The shim stood for the container and lost it: 255, as issue 11 asks. */
    async function expectShimLost(pid: number): Promise<void> {
      const exit: Reaped | undefined = await reap(pid, 30_000);
      expect(exit).toEqual({ code: 255, signal: null });
    }

    /** Kills one host process of a fresh sandbox; the whole sandbox stops, explained. */
    async function killOne(
      id: string,
      which: (s: State) => number,
      reason: RegExp,
      signal: NodeJS.Signals = 'SIGKILL',
    ): Promise<void> {
      const s = await runDetached(id, sleeper());
      process.kill(which(s), signal);
      const stopped = await waitStopped(id);
      expect(stopped.pid).toBe(0);
      expect(reasonOf(stopped)).toMatch(reason);
      await expectShimLost(s.pid);
      // The VM's logs outlive it, where the reason points.
      expect(reasonOf(stopped)).toContain(join(root, id, 'console.log'));
      expect(readFileSync(join(root, id, 'console.log'), 'utf8')).toMatch(/kapsel-init/);
      expect(readFileSync(join(root, id, 'monitor.log'), 'utf8')).toMatch(
        /sandbox stopped by a fault/,
      );
      await deleteAndExpectNothingLeft(id);
    }

    it('SIGKILL of virtiofsd (its first process)', async () => {
      const id = 'fault-vfsd';
      await killOne(
        id,
        () => supervised(id)['virtiofsd'] ?? 0,
        /^virtiofsd \(pid \d+\) killed by SIGKILL;/,
      );
    });

    it("SIGKILL of virtiofsd's sandboxed second process", async () => {
      const id = 'fault-vfsd-child';
      await killOne(
        id,
        () => childrenOf(supervised(id)['virtiofsd'] ?? 0)[0] ?? 0,
        /^virtiofsd \(pid \d+\) exit status 1; the VM/,
      );
    });

    it('SIGKILL of QEMU', async () => {
      const id = 'fault-qemu';
      await killOne(id, () => supervised(id)['qemu'] ?? 0, /^qemu \(pid \d+\) killed by SIGKILL/);
    });

    it('SIGKILL of the namespace watcher (ip monitor)', async () => {
      const id = 'fault-ipmon';
      await killOne(
        id,
        () => supervised(id)['the namespace watcher (ip monitor)'] ?? 0,
        /^the namespace watcher \(ip monitor\) \(pid \d+\) killed by SIGKILL/,
      );
    });

    it('SIGKILL of the sandbox process', async () => {
      const id = 'fault-monitor';
      const s = await runDetached(id, sleeper());
      const monitor = Number(readFileSync(vmDirLayout(vmDirOf(root, id)).pidFile, 'utf8'));
      const { qemu = 0 } = supervised(id);
      process.kill(monitor, 'SIGKILL');
      const stopped = await waitStopped(id);
      expect(reasonOf(stopped)).toMatch(/sandbox process \(pid \d+\) is gone/);
      await expectShimLost(s.pid);
      // QEMU goes with it (PR_SET_PDEATHSIG), and is reparented here to be reaped.
      await reap(monitor, 5000);
      expect(await reap(qemu, 10_000)).toEqual({ code: null, signal: 9 });
      await deleteAndExpectNothingLeft(id);
    });

    it('SIGTERM of the sandbox process: a clean stop that names it', async () => {
      const id = 'fault-monitor-term';
      await killOne(
        id,
        () => Number(readFileSync(vmDirLayout(vmDirOf(root, id)).pidFile, 'utf8')),
        /^its sandbox process \(pid \d+\) was stopped by SIGTERM; the VM's logs are kept in /,
        'SIGTERM',
      );
    });

    it('a foreground run whose QEMU dies says why, exits 255 and keeps the logs', async () => {
      const id = 'fault-run-fg';
      const run = startKapsel([
        '--root',
        root,
        'run',
        '-b',
        sleeper(['sh', '-c', 'echo up; sleep 3600']),
        '--',
        id,
      ]);
      run.child.stdin.end();
      // Its output has reached us: run is past start and relays the process
      // (a "running" state comes before start returns, and a QEMU killed in
      // between is a failed start, exit 1).
      await Promise.race([
        new Promise<void>((resolve) => {
          run.child.stdout.once('data', () => {
            resolve();
          });
        }),
        run.done.then((early) => {
          throw new Error(`run ended before its output: ${early.stderr}`);
        }),
      ]);
      process.kill(supervised(id)['qemu'] ?? 0, 'SIGKILL');
      const r = await run.done;
      expect(r.code).toBe(255);
      // Not grpc-js's bare "14 UNAVAILABLE: Connection dropped".
      const logs = join(root, '.vm', 'failed', basename(vmDirOf(root, id)), 'console.log');
      expect(r.stderr).toContain(
        `lost the process (14 UNAVAILABLE: Connection dropped): qemu (pid`,
      );
      expect(r.stderr).toContain(`killed by SIGKILL; the VM's logs are kept in ${logs}`);
      // run deleted the container, as runc's does; the logs outlive it until `delete` of the id.
      expect(readFileSync(logs, 'utf8')).toMatch(/kapsel-init/);
      await deleteAndExpectNothingLeft(id);
      expect(existsSync(logs)).toBe(false);
    });

    it('a foreground run whose QEMU dies while its container starts says why and exits 255', async () => {
      const id = 'fault-run-start';
      const run = startKapsel(['--root', root, 'run', '-b', sleeper(), '--', id]);
      run.child.stdin.end();
      // Created, and start under way: run starts right after it records it.
      const state = join(root, id, 'state.json');
      const created = (): boolean =>
        existsSync(state) &&
        (JSON.parse(readFileSync(state, 'utf8')) as { status?: string }).status === 'created';
      while (!created()) await sleep(5);
      process.kill(supervised(id)['qemu'] ?? 0, 'SIGKILL');
      const r = await run.done;
      expect(r.code).toBe(255);
      const logs = join(root, '.vm', 'failed', basename(vmDirOf(root, id)), 'console.log');
      // Not start's bare "No connection established ... ECONNREFUSED".
      expect(r.stderr).toMatch(/lost the process \(.*\): qemu \(pid \d+\) killed by SIGKILL/);
      expect(r.stderr).toContain(`killed by SIGKILL; the VM's logs are kept in ${logs}`);
      await deleteAndExpectNothingLeft(id);
    });

    it('a foreground exec whose VM dies says why and exits 255', async () => {
      const id = 'fault-exec-fg';
      await runDetached(id, sleeper());
      const e = startKapsel(['--root', root, 'exec', '--', id, 'sh', '-c', 'echo up; sleep 100']);
      e.child.stdin.end();
      await new Promise<void>((resolve) => {
        e.child.stdout.once('data', () => {
          resolve();
        });
      });
      process.kill(supervised(id)['qemu'] ?? 0, 'SIGKILL');
      const r = await e.done;
      expect(r.code).toBe(255);
      expect(r.stderr).toMatch(
        /exec failed: lost the process \(14 UNAVAILABLE: Connection dropped\): qemu \(pid \d+\) killed by SIGKILL; the VM's logs are kept in /,
      );
      await deleteAndExpectNothingLeft(id);
    });

    it('delete --force of a sandbox whose process hangs (SIGSTOP) is prompt', async () => {
      const id = 'fault-hung';
      const s = await runDetached(id, sleeper());
      const monitor = Number(readFileSync(vmDirLayout(vmDirOf(root, id)).pidFile, 'utf8'));
      process.kill(monitor, 'SIGSTOP');
      await deleteAndExpectNothingLeft(
        id,
        /^time=\S+ level=warning msg="sandbox monitor did not stop; killing it" pid=\d+\n$/,
      );
      // The shim could not learn anything: delete killed it.
      expect(await reap(s.pid, 5000)).toEqual({ code: null, signal: 9 });
    });

    it('delete --force of a sandbox whose virtiofsd is stopped (SIGSTOP) leaves nothing', async () => {
      const id = 'fault-vfsd-stopped';
      const s = await runDetached(id, sleeper());
      const vfsd = supervised(id)['virtiofsd'] ?? 0;
      // Both processes: the sandboxed second one is nobody's child but the first's.
      for (const p of [vfsd, ...childrenOf(vfsd)]) process.kill(p, 'SIGSTOP');
      // The guest never reports the kill (2 s for the shim) and RemoveContainer
      // runs out its deadline (2 s): slower than the other faults, still bounded.
      await deleteAndExpectNothingLeft(
        id,
        /^time=\S+ level=warning msg="sandbox monitor did not stop; killing it" pid=\d+\n$/,
        PROMPT_DELETE_MS + 3000,
      );
      expect(await reap(s.pid, 5000)).toEqual({ code: null, signal: 9 });
    });

    it('guest kernel panic', async () => {
      const id = 'fault-panic';
      const b = sleeper(['sh', '-c', 'sleep 1; echo c > /proc/sysrq-trigger; sleep 100'], (s) => {
        if (s.linux !== undefined) {
          s.linux.readonlyPaths = [];
          s.linux.maskedPaths = [];
        }
      });
      const s = await runDetached(id, b);
      const stopped = await waitStopped(id);
      expect(reasonOf(stopped)).toMatch(/^guest kernel panic: sysrq triggered crash \(qemu/);
      await expectShimLost(s.pid);
      await deleteAndExpectNothingLeft(id);
    });

    it('guest out of memory (no cgroup limit): the container stops, the reason says so', async () => {
      const id = 'fault-oom';
      const before = process.env['KAPSEL_VM_BASE_MEMORY_MIB'];
      process.env['KAPSEL_VM_BASE_MEMORY_MIB'] = '384';
      let s: State;
      try {
        // busybox tail buffers a line that never ends: it grows until the OOM killer acts.
        s = await runDetached(id, sleeper(['tail', '/dev/zero']));
      } finally {
        if (before === undefined) delete process.env['KAPSEL_VM_BASE_MEMORY_MIB'];
        else process.env['KAPSEL_VM_BASE_MEMORY_MIB'] = before;
      }
      const stopped = await waitStopped(id);
      expect(reasonOf(stopped)).toMatch(
        /^out of memory in the container \(guest out of memory: the kernel killed tail \(pid \d+\)\)/,
      );
      // The guest process died by SIGKILL; its shim ends the same way.
      expect(await reap(s.pid, 30_000)).toEqual({ code: null, signal: 9 });
      await deleteAndExpectNothingLeft(id);
    });

    it('SIGKILL of `kapsel create` while the VM boots', async () => {
      const id = 'fault-create-boot';
      const c = startKapsel(['--root', root, 'create', '-b', sleeper(), '--', id]);
      c.child.stdin.end();
      // Killed once the sandbox process runs, long before the guest is up.
      for (let i = 0; i < 200 && !existsSync(vmDirLayout(vmDirOf(root, id)).pidFile); i++) {
        await sleep(50);
      }
      c.child.kill('SIGKILL');
      await c.done;
      const stopped = await waitStopped(id);
      expect(reasonOf(stopped)).toMatch(
        /creator \(pid \d+\) died before the container was created/,
      );
      // The sandbox gives up by itself, well before anyone deletes it.
      for (let i = 0; i < 100 && existsSync(vmDirOf(root, id)); i++) await sleep(100);
      expect(existsSync(vmDirOf(root, id))).toBe(false);
      await deleteAndExpectNothingLeft(id);
    });

    it('delete --force while `kapsel create` boots the VM: create says so, nothing is left', async () => {
      const id = 'fault-create-deleted';
      const c = startKapsel(['--root', root, 'create', '-b', sleeper(), '--', id]);
      c.child.stdin.end();
      for (let i = 0; i < 200 && !existsSync(vmDirLayout(vmDirOf(root, id)).pidFile); i++) {
        await sleep(50);
      }
      const cgroups = hostCgroupsOf(id);
      const t0 = Date.now();
      const d = await k(['delete', '--force', '--', id]);
      expect(d.code).toBe(0);
      expect(Date.now() - t0).toBeLessThan(PROMPT_DELETE_MS);
      const r = await c.done;
      expect(r.code).toBe(1);
      // Not "ENOENT: no such file or directory, open '.../state.json.PID.tmp'".
      expect(r.stderr).toContain(`container ${id} was deleted while it was being created`);
      // Once create has undone its part (a second delete finds nothing).
      await deleteAndExpectNothingLeft(id);
      expect(cgroups.filter((dir) => existsSync(dir))).toEqual([]);
    });

    it('SIGKILL of `kapsel create` after the agent created the container', async () => {
      const id = 'fault-create-late';
      // The shim is ready within milliseconds, and create records the
      // container as created right after: a kill seldom lands in between.
      // This shim waits 2 s before it becomes the real one (same pid), so
      // create is held there. Its name still holds SHIM_PROGRAM.
      const slowShim = join(out, `${SHIM_PROGRAM}-slow`);
      writeFileSync(
        slowShim,
        `#!/bin/sh\nsleep 2\nexec ${join(ROOT, 'build', 'native', SHIM_PROGRAM)} "$@"\n`,
        { mode: 0o755 },
      );
      process.env['KAPSEL_SHIM'] = slowShim;
      let c: ReturnType<typeof startKapsel>;
      try {
        c = startKapsel(['--root', root, 'create', '-b', sleeper(), '--', id]);
      } finally {
        delete process.env['KAPSEL_SHIM'];
      }
      c.child.stdin.end();
      // The shim starts right after CreateContainer succeeded in the guest.
      let shim: number | undefined;
      for (let i = 0; i < 2400 && shim === undefined; i++) {
        const p = processesMentioning(SHIM_PROGRAM).find((l) => l.includes(root));
        shim = p === undefined ? undefined : Number(p.split(':')[0]);
        if (shim === undefined) await sleep(50);
      }
      expect(shim).toBeDefined();
      c.child.kill('SIGKILL');
      await c.done;
      const stopped = await waitStopped(id);
      expect(reasonOf(stopped)).toMatch(
        /creator \(.*pid \d+\) died before the container was created/,
      );
      // The shim ends either way: lost (255) if it relayed before the sandbox
      // process removed the container the dead creator left, refused at its
      // hello (1: no such container) if it came after, as a held one may.
      const exit = await reap(shim ?? 0, 30_000);
      expect(exit?.signal).toBeNull();
      expect([1, 255]).toContain(exit?.code);
      await deleteAndExpectNothingLeft(id);
    });

    describe('in one shared sandbox', () => {
      // A container whose id starts with '-' (runc takes it), and the faults
      // that leave its VM up; the last kills its shim.
      const id = '-fault-dash';
      let s: State;

      beforeAll(async () => {
        s = await runDetached(id, sleeper());
      });

      it('takes an id starting with "-" and refuses ., .. and kapsel\'s own .vm', async () => {
        expect(s.status).toBe('running');
        for (const bad of ['.', '..', '.vm']) {
          const r = await kapselToFiles(
            ['--root', root, 'run', '-d', '-b', sleeper(), '--', bad],
            out,
          );
          expect(r.code).toBe(1);
          expect(r.stderr()).toMatch(/invalid container id/);
          const d = await k(['delete', '--force', '--', bad]);
          expect(d.code).toBe(1);
          expect(d.stderr).toMatch(/invalid container id/);
        }
        // The victim of issue 11 (`delete -f .vm`) is untouched.
        expect(existsSync(vmDirLayout(vmDirOf(root, id)).socket)).toBe(true);
        const e = await k(['exec', '--', id, 'echo', 'alive']);
        expect(e.stdout).toBe('alive\n');
      });

      it('`exec ID yes | head -1` exits 141 and leaves nothing running', async () => {
        const r = await new Promise<{ code: number | null; out: string; err: string }>(
          (resolve) => {
            const sh = spawn(
              'bash',
              [
                '-c',
                `"${KAPSEL}" --root "${root}" exec -- "${id}" yes | head -1; echo "status=\${PIPESTATUS[0]}"`,
              ],
              { stdio: ['ignore', 'pipe', 'pipe'] },
            );
            let o = '';
            let e = '';
            sh.stdout.on('data', (d: Buffer) => (o += d.toString()));
            sh.stderr.on('data', (d: Buffer) => (e += d.toString()));
            sh.on('close', (code) => {
              resolve({ code, out: o, err: e });
            });
          },
        );
        expect(r.out).toBe('y\nstatus=141\n');
        expect(r.err).toBe('');
        const ps = await k(['exec', '--', id, 'ps', '-o', 'args']);
        expect(ps.stdout).not.toMatch(/\byes\b/);
      });

      it('a failed --pid-file of `exec -d` kills the exec and its shim', async () => {
        const r = await k([
          'exec',
          '-d',
          '--pid-file',
          '/no/such/dir/p',
          '--',
          id,
          'sleep',
          '7777',
        ]);
        // As runc: `exec failed: open /no/such/dir/.p: no such file or directory`, 255.
        expect(r.code).toBe(255);
        expect(r.stderr).toContain(
          'exec failed: write pid file /no/such/dir/p: no such file or directory',
        );
        await sleep(1000);
        const ps = await k(['exec', '--', id, 'ps', '-o', 'args']);
        expect(ps.stdout).not.toContain('sleep 7777');
        expect(processesMentioning(join(root, id, 'shim-exec'))).toEqual([]);
      });

      it('SIGKILL of the shim: the container is killed to match, stopped with a reason', async () => {
        process.kill(s.pid, 'SIGKILL');
        // Stopped at once (its pid is dead); the reason follows once the
        // sandbox process saw the shim's call go and killed the container.
        let stopped = await waitStopped(id);
        for (let i = 0; i < 100 && reasonOf(stopped) === ''; i++) {
          await sleep(100);
          stopped = await state(id);
        }
        expect(reasonOf(stopped)).toMatch(
          /shim \(pid \d+\) died; the container's processes were killed/,
        );
        expect(await reap(s.pid, 5000)).toEqual({ code: null, signal: 9 });
        const e = await k(['exec', '--', id, 'true']);
        expect(e.stderr).toContain('exec failed: cannot exec in a stopped container');
        expect(e.code).toBe(255);
        await deleteAndExpectNothingLeft(id);
      });
    });
  },
);
