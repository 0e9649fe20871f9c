import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import type { Process, Spec, State } from '../../oci/spec.js';
import { vmDirOf } from '../../runtime/src/sandbox/vm-dir.js';
import { SHIM_PROGRAM } from '../../runtime/src/shim/spawn.js';
import { runCommand } from '../support/engines.js';
import {
  GUEST_DIR,
  KAPSEL,
  kapsel,
  kapselToFiles,
  makeBundle,
  removeBundles,
  processesMentioning,
  vmMissing,
} from '../support/kapsel-cli.js';

const skip = vmMissing();

/**
 * The runc verbs against real VMs, as an engine drives them: create (shim +
 * pid file), start, state, list, kill, delete; hooks; and a VM that dies
 * under a running container.
 */
describe.skipIf(skip !== undefined)(
  `kapsel create/start/kill/delete in a real VM${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const root = mkdtempSync(join(tmpdir(), 'kapsel-root-'));
    const work = mkdtempSync(join(tmpdir(), 'kapsel-lc-'));
    afterAll(() => {
      rmSync(root, { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
      removeBundles();
    });

    const k = (...args: string[]): ReturnType<typeof kapsel> => kapsel(['--root', root, ...args]);

    async function stateOf(id: string): Promise<State> {
      const r = await k('state', id);
      expect(r.stderr).toBe('');
      return JSON.parse(r.stdout) as State;
    }

    async function waitStatus(id: string, status: State['status']): Promise<State> {
      for (let i = 0; i < 100; i++) {
        const s = await stateOf(id);
        if (s.status === status) return s;
        await sleep(100);
      }
      throw new Error(`${id} never became ${status}`);
    }

    function expectNothingLeft(id: string): void {
      expect(processesMentioning(vmDirOf(root, id))).toEqual([]);
      expect(processesMentioning(SHIM_PROGRAM).filter((p) => p.includes(root))).toEqual([]);
      expect(existsSync(join(root, id))).toBe(false);
      expect(existsSync(vmDirOf(root, id))).toBe(false);
    }

    it('creates with a shim and pid file, starts, reports state and list, runs hooks, kills and deletes', async () => {
      const id = 'lc-basic';
      const hookLog = join(work, 'hooks.log');
      const hook = join(work, 'hook.sh');
      // Each hook appends its name and the state's status and pid it was given on stdin.
      writeFileSync(
        hook,
        `#!/bin/sh\nread -r state\necho "$1 $(echo "$state" | sed -n 's/.*"status":"\\([a-z]*\\)".*/\\1/p') $(echo "$state" | sed -n 's/.*"pid":\\([0-9]*\\).*/\\1/p')" >> ${hookLog}\n`,
      );
      chmodSync(hook, 0o755);
      const hooks = Object.fromEntries(
        [
          'prestart',
          'createRuntime',
          'createContainer',
          'startContainer',
          'poststart',
          'poststop',
        ].map((kind) => [kind, [{ path: hook, args: ['hook', kind] }]]),
      );
      const b = makeBundle((spec) => {
        spec.process = {
          ...requireProcess(spec),
          args: [
            'sh',
            '-c',
            'echo "release=$(uname -r)"; trap "echo term; exit 3" TERM; while :; do sleep 0.1; done',
          ],
        };
        spec.hooks = hooks;
      });
      const pidFile = join(work, 'pid');
      const guestRelease = readFileSync(join(GUEST_DIR, 'kernel-release'), 'utf8').trim();
      // The shim keeps create's stdout: a file here, as containerd passes a fifo.
      const created = await kapselToFiles(
        ['--root', root, 'create', '--bundle', b, '--pid-file', pidFile, id],
        work,
      );
      expect(created.stderr()).toBe('');
      expect(created.code).toBe(0);
      const pid = Number(readFileSync(pidFile, 'utf8'));
      expect(pid).toBeGreaterThan(0);
      const st = await stateOf(id);
      expect(st).toMatchObject({ id, status: 'created', pid, bundle: b });
      const list = await k('list', '--format', 'json');
      expect(JSON.parse(list.stdout)).toEqual([
        expect.objectContaining({ id, status: 'created', pid }),
      ]);
      expect((await k('list', '-q')).stdout).toBe(`${id}\n`);
      expect((await k('exec', id, 'true')).stderr).toContain(
        'cannot exec in a container that has not been started',
      );

      // runc pauses a created container too; resume returns it to created.
      expect((await k('pause', id)).code).toBe(0);
      expect((await stateOf(id)).status).toBe('paused');
      expect((await k('resume', id)).code).toBe(0);
      expect((await stateOf(id)).status).toBe('created');

      expect((await k('start', id)).code).toBe(0);
      expect((await stateOf(id)).status).toBe('running');
      expect((await k('pause', id)).code).toBe(0);
      expect((await stateOf(id)).status).toBe('paused');
      expect((await k('resume', id)).code).toBe(0);
      expect((await stateOf(id)).status).toBe('running');
      const again = await k('start', id);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain('cannot start an already running container');
      const refused = await k('delete', id);
      expect(refused.stderr).toContain(
        `cannot delete container ${id} that is not stopped: running`,
      );
      // runc's words; the log format escapes the quotes.
      expect((await k('kill', id, 'NOSUCH')).stderr).toContain('unknown signal \\"NOSUCH\\"');
      // runc's exec -t takes over the caller's terminal; with none (setsid,
      // pipes) it fails before it runs anything: exec.go's 255.
      const noTty = await runCommand('setsid', [
        '-w',
        KAPSEL,
        '--root',
        root,
        'exec',
        '-t',
        id,
        'true',
      ]);
      expect(noTty.code).toBe(255);
      expect(noTty.stderr).toContain('exec failed: open /dev/tty: no such device or address');

      expect((await k('kill', id)).code).toBe(0); // SIGTERM by default
      const stopped = await waitStatus(id, 'stopped');
      // The shim relayed the container's output to create's stdout.
      expect(created.stdout()).toBe(`release=${guestRelease}\nterm\n`);
      expect(stopped.pid).toBe(0);
      const late = await k('kill', id, 'KILL');
      expect(late.code).toBe(1);
      expect(late.stderr).toContain('container not running');
      expect((await k('delete', id)).code).toBe(0);
      expectNothingLeft(id);

      const lines = readFileSync(hookLog, 'utf8').trim().split('\n');
      expect(lines).toEqual([
        `prestart created ${pid}`,
        `createRuntime created ${pid}`,
        `createContainer created ${pid}`,
        `startContainer created ${pid}`,
        `poststart running ${pid}`,
        'poststop stopped 0',
      ]);
    });

    it('fails create when a createRuntime hook fails, leaving nothing behind', async () => {
      const id = 'lc-hookfail';
      const b = makeBundle((spec) => {
        spec.hooks = {
          createRuntime: [{ path: '/bin/sh', args: ['sh', '-c', 'echo nope >&2; exit 2'] }],
        };
      });
      const r = await k('create', '--bundle', b, id);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('error running createRuntime hook #0: exit status 2');
      expect(r.stderr).toContain('nope');
      expectNothingLeft(id);
    });

    it('records a container as stopped with the reason when its QEMU dies; the shim ends and delete cleans up', async () => {
      const id = 'lc-vmdeath';
      const b = makeBundle((spec) => {
        spec.process = { ...requireProcess(spec), args: ['sleep', '1000'] };
      });
      expect(
        (await kapselToFiles(['--root', root, 'run', '--detach', '--bundle', b, id], work)).code,
      ).toBe(0);
      const running = await stateOf(id);
      expect(running.status).toBe('running');
      const qemu = processesMentioning(vmDirOf(root, id)).filter((p) => p.includes('qemu-system'));
      expect(qemu).toHaveLength(1);
      process.kill(Number(qemu[0]?.split(':')[0]), 'SIGKILL');
      const stopped = await waitStatus(id, 'stopped');
      expect(stopped.annotations?.['io.kapsel.stop-reason']).toMatch(
        /^qemu \(pid \d+\) killed by SIGKILL/,
      );
      for (let i = 0; i < 50 && existsSync(`/proc/${running.pid}`); i++) await sleep(100);
      expect(existsSync(`/proc/${running.pid}`)).toBe(false);
      expect(readFileSync(join(root, id, 'shim.log'), 'utf8')).toContain('lost the process');
      expect((await k('delete', id)).code).toBe(0);
      expectNothingLeft(id);
    });

    it('--force deletes a running container; delete --force of a missing one succeeds as with runc', async () => {
      const id = 'lc-force';
      const b = makeBundle((spec) => {
        spec.process = { ...requireProcess(spec), args: ['sleep', '1000'] };
      });
      expect(
        (await kapselToFiles(['--root', root, 'run', '-d', '--bundle', b, id], work)).code,
      ).toBe(0);
      expect((await k('delete', '--force', id)).code).toBe(0);
      expectNothingLeft(id);
      expect((await k('delete', '--force', 'never-was')).code).toBe(0);
    });
  },
);

function requireProcess(spec: Spec): Process {
  if (spec.process === undefined) throw new Error('default spec has no process');
  return spec.process;
}
