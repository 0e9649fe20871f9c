import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { bootLogsDirOf } from '../../runtime/src/sandbox/boot-logs.js';
import { vmDirLayout, vmDirOf } from '../../runtime/src/sandbox/vm-dir.js';
import { REPORT_GRACE_MS } from '../../runtime/src/sys/ready-deadline.js';
import {
  DEFAULT_BUNDLE,
  kapsel,
  processesMentioning,
  startKapsel,
  vmMissing,
  type CliResult,
} from '../support/kapsel-cli.js';

// Issue 11: a sandbox whose start cannot complete must not hold its creator
// forever. Here the guest agent never opens its port (init starts node
// with a script that only listens on a TCP port: kapsel.agent_flags=, see
// docs/light-sandboxes.md), under a short KAPSEL_READY_TIMEOUT. The create
// fails naming what did not become ready and where the VM's logs are kept,
// and leaves nothing else: no process, mount, VM directory, container
// state, host cgroup or /dev/shm file.

const skip = vmMissing();
const NEVER_READY = 'kapsel.agent_flags=-e,require(`net`).createServer().listen()';

describe.skipIf(skip !== undefined)(
  `a sandbox that never becomes ready${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const root = mkdtempSync(join(tmpdir(), 'kapsel-deadline-'));
    afterAll(async () => {
      for (const id of readdirSync(root).filter((e) => e !== '.vm')) {
        await kapsel(['--root', root, 'delete', '--force', '--', id]);
      }
      rmSync(root, { recursive: true, force: true });
    });

    /** bin/kapsel with `env` added to ours. */
    function withEnv(env: Record<string, string>, args: string[]): ReturnType<typeof kapsel> {
      const saved = { ...process.env };
      Object.assign(process.env, env);
      try {
        return kapsel(['--root', root, ...args]);
      } finally {
        for (const k of Object.keys(env)) {
          if (saved[k] === undefined) Reflect.deleteProperty(process.env, k);
          else process.env[k] = saved[k];
        }
      }
    }

    function cgroupsNamed(id: string): string {
      return execFileSync('find', ['/sys/fs/cgroup', '-name', `*${id}*`], {
        encoding: 'utf8',
      }).trim();
    }

    function expectNothingLeft(id: string, shmBefore: string[]): void {
      const vmDir = vmDirOf(root, id);
      expect(processesMentioning(root)).toEqual([]);
      expect(readFileSync('/proc/mounts', 'utf8')).not.toContain(root);
      expect(existsSync(vmDir)).toBe(false);
      expect(existsSync(join(root, id))).toBe(false);
      expect(cgroupsNamed(id)).toBe('');
      expect(readdirSync('/dev/shm').filter((f) => !shmBefore.includes(f))).toEqual([]);
    }

    it('create fails at the sandbox deadline, names the kept console log, leaves nothing', async () => {
      const id = `never-${String(process.pid)}`;
      const shm = readdirSync('/dev/shm');
      const t0 = Date.now();
      const r = await withEnv({ KAPSEL_READY_TIMEOUT: '15s', KAPSEL_KERNEL_PARAMS: NEVER_READY }, [
        'run',
        '-d',
        '-b',
        DEFAULT_BUNDLE,
        '--',
        id,
      ]);
      const took = Date.now() - t0;
      expect(r.code).toBe(1);
      const kept = join(bootLogsDirOf(vmDirOf(root, id)), 'console.log');
      expect(r.stderr).toContain(
        `start the sandbox: the sandbox's guest agent did not become ready within 15 s (runtime.ready_timeout, KAPSEL_READY_TIMEOUT); the VM's logs are kept in ${kept} and monitor.log`,
      );
      // Its own deadline, not the creator's (which adds REPORT_GRACE_MS).
      expect(took).toBeLessThan(15_000 + REPORT_GRACE_MS);
      expect(readFileSync(kept, 'utf8')).toContain('kapsel-init: started agent');
      expectNothingLeft(id, shm);
      expect((await kapsel(['--root', root, 'list', '-q'])).stdout).toBe('');
      // delete of the id takes the kept logs away.
      const d = await kapsel(['--root', root, 'delete', '--force', '--', id]);
      expect(d.code).toBe(0);
      expect(existsSync(kept)).toBe(false);
    });

    it('a sandbox process that cannot report (stopped) is killed at the creator deadline', async () => {
      const id = `stopped-${String(process.pid)}`;
      const shm = readdirSync('/dev/shm');
      const saved = process.env['KAPSEL_READY_TIMEOUT'];
      process.env['KAPSEL_READY_TIMEOUT'] = '5s';
      let run;
      try {
        run = startKapsel(['--root', root, 'run', '-d', '-b', DEFAULT_BUNDLE, '--', id]);
      } finally {
        if (saved === undefined) delete process.env['KAPSEL_READY_TIMEOUT'];
        else process.env['KAPSEL_READY_TIMEOUT'] = saved;
      }
      run.child.stdin.end();
      // SIGSTOP the sandbox process as soon as it names itself, long before
      // its own 5 s run out: only its creator's deadline can end this.
      const pidFile = vmDirLayout(vmDirOf(root, id)).pidFile;
      const ended = { yet: false };
      const done = run.done.then((r) => {
        ended.yet = true;
        return r;
      });
      let pid = 0;
      while (!ended.yet && pid === 0) {
        try {
          pid = Number(readFileSync(pidFile, 'utf8'));
        } catch {
          await sleep(20);
        }
      }
      expect(pid).toBeGreaterThan(0);
      process.kill(pid, 'SIGSTOP');
      const r: CliResult = await done;
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        `start the sandbox: not ready within 15 s (KAPSEL_READY_TIMEOUT and 10 s to report); killed it (pid ${String(pid)})`,
      );
      expectNothingLeft(id, shm);
    });
  },
);
