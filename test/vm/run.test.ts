import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import type { Process, Spec, State } from '../../oci/spec.js';
import { vmDirOf } from '../../runtime/src/state.js';
import {
  GUEST_DIR,
  kapsel,
  makeBundle,
  processesMentioning,
  startKapsel,
  vmMissing,
  type RunningCli,
} from '../support/kapsel-cli.js';

const skip = vmMissing();

describe.skipIf(skip !== undefined)(
  `kapsel run in a real VM${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const root = mkdtempSync(join(tmpdir(), 'kapsel-root-'));
    const bundles: string[] = [];
    const bundle = (edit: Parameters<typeof makeBundle>[0]): string => {
      const b = makeBundle(edit);
      bundles.push(b);
      return b;
    };

    afterAll(() => {
      for (const b of bundles) rmSync(b, { recursive: true, force: true });
      rmSync(root, { recursive: true, force: true });
    });

    /** Nothing of a run may outlive it: no QEMU, virtiofsd, monitor, socket or state dir. */
    function expectNothingLeft(id: string): void {
      expect(processesMentioning(join(root, id))).toEqual([]);
      expect(processesMentioning(vmDirOf(root, id))).toEqual([]);
      expect(existsSync(join(root, id))).toBe(false);
      expect(existsSync(vmDirOf(root, id))).toBe(false);
    }

    async function waitForOutput(run: RunningCli, text: string): Promise<void> {
      let out = '';
      await new Promise<void>((resolve) => {
        const onData = (d: Buffer): void => {
          out += d.toString();
          if (out.includes(text)) {
            run.child.stdout.off('data', onData);
            resolve();
          }
        };
        run.child.stdout.on('data', onData);
      });
    }

    async function waitForStatus(id: string, status: string): Promise<State> {
      for (;;) {
        const s = await kapsel(['--root', root, 'state', id]);
        if (s.code === 0) {
          const state = JSON.parse(s.stdout) as State;
          if (state.status === status) return state;
        }
        await sleep(250);
      }
    }

    it('runs in the guest kernel as PID 1 with the spec hostname, relays stdin, exits with its status', async () => {
      const id = 'vm-basic';
      const b = bundle((spec) => {
        spec.hostname = 'kapsel-vm-test';
        spec.process = {
          ...requireProcess(spec),
          args: [
            'sh',
            '-c',
            'read line; echo "got=$line"; echo "release=$(uname -r)"; echo "pid=$$"; echo "host=$(hostname)"; echo "lo=$(ip addr show lo | grep -o -e LOOPBACK,UP -e "inet 127.0.0.1/8" | tr "\\n" " ")"; exit 7',
          ],
        };
      });
      const run = startKapsel(['--root', root, 'run', '--bundle', b, id]);
      // While the container waits on stdin it is running, and `state` says so.
      const state = await waitForStatus(id, 'running');
      expect(state).toMatchObject({ id, status: 'running', bundle: b, pid: run.child.pid });
      run.child.stdin.end('hello from the host\n');
      const r = await run.done;
      // The one warning allowed: no usable KVM, so TCG (as on CI machines).
      expect(withoutTcgWarning(r.stderr)).toBe('');
      const guestRelease = readFileSync(join(GUEST_DIR, 'kernel-release'), 'utf8').trim();
      expect(guestRelease).not.toBe(release());
      expect(r.stdout).toBe(
        // lo: up, with its address, in the container's new network namespace
        // (runc's spec has one), as runc leaves it.
        `got=hello from the host\nrelease=${guestRelease}\npid=1\nhost=kapsel-vm-test\nlo=LOOPBACK,UP inet 127.0.0.1/8 \n`,
      );
      expect(r.code).toBe(7);
      expectNothingLeft(id);
      const gone = await kapsel(['--root', root, 'state', id]);
      expect(gone.code).toBe(1);
      expect(gone.stderr).toContain('container does not exist');
    });

    it('forwards signals to the container and exits with its status', async () => {
      const id = 'vm-signal';
      const b = bundle((spec) => {
        spec.process = {
          ...requireProcess(spec),
          args: [
            'sh',
            '-c',
            'trap "echo got TERM; exit 42" TERM; echo ready; while :; do sleep 0.1; done',
          ],
        };
      });
      const run = startKapsel(['--root', root, 'run', '--bundle', b, id]);
      await waitForOutput(run, 'ready\n');
      run.child.kill('SIGTERM');
      const r = await run.done;
      expect(r.stdout).toBe('ready\ngot TERM\n');
      expect(r.code).toBe(42);
      expectNothingLeft(id);
    });

    it('delete refuses a running container, and --force stops it and its VM', async () => {
      const id = 'vm-delete';
      const b = bundle((spec) => {
        spec.process = { ...requireProcess(spec), args: ['sleep', '1000'] };
      });
      const run = startKapsel(['--root', root, 'run', '--bundle', b, id]);
      await waitForStatus(id, 'running');
      const refused = await kapsel(['--root', root, 'delete', id]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(
        `cannot delete container ${id} that is not stopped: running`,
      );
      const forced = await kapsel(['--root', root, 'delete', '--force', id]);
      expect(forced.code).toBe(0);
      const r = await run.done;
      expect(r.code).not.toBe(0);
      expectNothingLeft(id);
    });

    it('fails clearly when the command does not exist, and leaves nothing behind', async () => {
      const id = 'vm-nocmd';
      const b = bundle((spec) => {
        spec.process = { ...requireProcess(spec), args: ['/no/such/command'] };
      });
      const r = await kapsel(['--root', root, 'run', '--bundle', b, id]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('/no/such/command');
      expect(r.stdout).toBe('');
      expectNothingLeft(id);
    });
  },
);

function requireProcess(spec: Spec): Process {
  if (spec.process === undefined) throw new Error('default spec has no process');
  return spec.process;
}

function withoutTcgWarning(stderr: string): string {
  return stderr
    .split('\n')
    .filter((l) => !l.includes('KVM is not usable'))
    .join('\n');
}
