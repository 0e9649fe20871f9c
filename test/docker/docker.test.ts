import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { State } from '../../oci/spec.js';
import { vmDirOf } from '../../runtime/src/sandbox/vm-dir.js';
import {
  DOCKERD,
  DockerDaemon,
  engineMissing,
  IMAGE,
  mountsUnder,
  runCommand,
} from '../support/engines.js';
import { GUEST_DIR, KAPSEL, processesMentioning, vmMissing } from '../support/kapsel-cli.js';

const skip = engineMissing(DOCKERD, '/usr/bin/docker') ?? vmMissing();
const guestRelease = (): string => readFileSync(join(GUEST_DIR, 'kernel-release'), 'utf8').trim();

/**
 * Docker's acceptance smoke set, run with runc (to prove the tests right)
 * and with kapsel, against a private dockerd.
 */
describe.skipIf(skip !== undefined)(
  `docker run --runtime${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let d: DockerDaemon;
    let work = '';
    beforeAll(async () => {
      work = mkdtempSync('/tmp/kdv-');
      d = await DockerDaemon.start();
      await d.importImage();
    });
    afterAll(async () => {
      await d.docker([
        'rm',
        '-f',
        ...(await d.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean),
      ]);
      await d.stop();
      if (work !== '') rmSync(work, { recursive: true, force: true });
    });

    describe.each(['runc', 'kapsel'])('with %s', (runtime) => {
      const kernel = (): string => (runtime === 'kapsel' ? guestRelease() : release());
      const run = (...args: string[]): ReturnType<DockerDaemon['docker']> =>
        d.docker(['run', '--network', 'none', '--runtime', runtime, ...args]);
      const inspect = async (name: string, format: string): Promise<string> =>
        (await d.docker(['inspect', '-f', format, name])).stdout.trim();

      it('run --rm prints the kernel release and passes the exit code through', async () => {
        const r = await run('--rm', IMAGE, 'sh', '-c', 'uname -r; exit 3');
        expect(r.stdout).toBe(`${kernel()}\n`);
        expect(r.code).toBe(3);
      });

      it("honours --hostname, -e, -w, -u and Docker's /etc/hosts and -v binds", async () => {
        const vol = mkdtempSync(join(work, 'vol-'));
        chmodSync(vol, 0o755); // mkdtemp makes it 0700; -u 1000 reads it
        writeFileSync(join(vol, 'in'), 'from-host\n');
        const r = await run(
          '--rm',
          '--hostname',
          'boxy',
          '-e',
          'FOO=bar',
          '-w',
          '/tmp',
          '-u',
          '1000:1000',
          '-v',
          `${vol}:/data`,
          IMAGE,
          'sh',
          '-c',
          'echo "$(hostname) $FOO $(pwd) $(id -u):$(id -g)"; grep -c localhost /etc/hosts; cat /data/in',
        );
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe('boxy bar /tmp 1000:1000\n2\nfrom-host\n');
        expect(r.code).toBe(0);
        const w = await run(
          '--rm',
          '-v',
          `${vol}:/data`,
          IMAGE,
          'sh',
          '-c',
          'echo written > /data/out',
        );
        expect(w.code).toBe(0);
        expect(readFileSync(join(vol, 'out'), 'utf8')).toBe('written\n');
      });

      it('run -d, logs, stop (SIGTERM), stop -t (then SIGKILL), kill -s, rm -f', async () => {
        const name = `smoke-${runtime}`;
        const trap =
          'trap "echo got TERM; exit 0" TERM; trap "echo got USR1; exit 9" USR1; echo started; while :; do sleep 0.1; done';
        expect((await run('-d', '--name', name, IMAGE, 'sh', '-c', trap)).code).toBe(0);
        await waitFor(async () => (await d.docker(['logs', name])).stdout.includes('started'));
        expect((await d.docker(['stop', name])).code).toBe(0);
        expect(await inspect(name, '{{.State.Status}} {{.State.ExitCode}}')).toBe('exited 0');
        expect((await d.docker(['logs', name])).stdout).toBe('started\ngot TERM\n');
        expect((await d.docker(['rm', name])).code).toBe(0);

        expect((await run('-d', '--name', name, IMAGE, 'sh', '-c', trap)).code).toBe(0);
        await waitFor(async () => (await d.docker(['logs', name])).stdout.includes('started'));
        expect((await d.docker(['kill', '-s', 'USR1', name])).code).toBe(0);
        expect((await d.docker(['wait', name])).stdout.trim()).toBe('9');
        expect((await d.docker(['logs', name])).stdout).toBe('started\ngot USR1\n');
        expect((await d.docker(['rm', name])).code).toBe(0);

        const deaf = 'trap "" TERM; echo started; while :; do sleep 0.1; done';
        expect((await run('-d', '--name', name, IMAGE, 'sh', '-c', deaf)).code).toBe(0);
        await waitFor(async () => (await d.docker(['logs', name])).stdout.includes('started'));
        const t0 = Date.now();
        expect((await d.docker(['stop', '-t', '1', name])).code).toBe(0);
        expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
        expect(await inspect(name, '{{.State.ExitCode}}')).toBe('137');
        expect((await d.docker(['rm', name])).code).toBe(0);

        expect((await run('-d', '--name', name, IMAGE, 'sleep', '1000')).code).toBe(0);
        expect((await d.docker(['rm', '-f', name])).code).toBe(0);
        expect((await d.docker(['ps', '-aq', '--filter', `name=${name}`])).stdout).toBe('');
        expectNothingLeft();
      });

      it('docker exec runs in the container and passes the exit code', async () => {
        const name = `exec-${runtime}`;
        expect((await run('-d', '--name', name, IMAGE, 'sleep', '1000')).code).toBe(0);
        const r = await d.docker([
          'exec',
          '-e',
          'X=1',
          '-w',
          '/tmp',
          name,
          'sh',
          '-c',
          'echo "$X $(pwd) $(uname -r)"; exit 4',
        ]);
        expect(r.stdout).toBe(`1 /tmp ${kernel()}\n`);
        expect(r.code).toBe(4);
        // -it through a real terminal: `script` gives the client one.
        const tty = await runCommand('script', [
          '-qec',
          `/usr/bin/docker -H unix://${d.socket} exec -it ${name} sh -c 'tty; stty size'`,
          '/dev/null',
        ]);
        expect(tty.stdout).toMatch(/\/dev\/pts\/\d+/);
        expect(tty.code).toBe(0);
        expect((await d.docker(['rm', '-f', name])).code).toBe(0);
      });

      it("--memory limits the container's cgroup", async () => {
        const r = await run(
          '--rm',
          '--memory',
          '64m',
          IMAGE,
          'sh',
          '-c',
          'cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes',
        );
        expect(r.stdout.trim()).toBe(String(64 * 1024 * 1024));
      });

      function expectNothingLeft(): void {
        if (runtime !== 'kapsel') return;
        expect(processesMentioning(d.runtimeRoot)).toEqual([]);
        expect(mountsUnder(d.runtimeRoot)).toEqual([]);
      }
    });

    describe('with kapsel only', () => {
      const k = (...args: string[]): ReturnType<typeof runCommand> =>
        runCommand(KAPSEL, ['--root', d.runtimeRoot, ...args]);

      it('keeps kapsel state right, and a killed QEMU stops the container with the shim exiting non-zero', async () => {
        const name = 'vm-death';
        expect(
          (
            await d.docker([
              'run',
              '-d',
              '--network',
              'none',
              '--runtime',
              'kapsel',
              '--name',
              name,
              IMAGE,
              'sleep',
              '1000',
            ])
          ).code,
        ).toBe(0);
        const id = (await d.docker(['inspect', '-f', '{{.Id}}', name])).stdout.trim();
        const dockerPid = Number(
          (await d.docker(['inspect', '-f', '{{.State.Pid}}', name])).stdout.trim(),
        );
        const state = JSON.parse((await k('state', id)).stdout) as State;
        expect(state).toMatchObject({ id, status: 'running', pid: dockerPid });
        expect((await k('list', '-q')).stdout).toBe(`${id}\n`);
        const vmDir = vmDirOf(d.runtimeRoot, id);
        const qemu = processesMentioning(vmDir).filter((p) => p.includes('qemu-system'));
        expect(qemu).toHaveLength(1);
        process.kill(Number(qemu[0]?.split(':')[0]), 'SIGKILL');
        // containerd reaps the shim: 255 says it lost its process with the VM.
        expect((await d.docker(['wait', name])).stdout.trim()).toBe('255');
        expect((await d.docker(['rm', name])).code).toBe(0);
        expect(processesMentioning(vmDir)).toEqual([]);
        expect(existsSync(vmDir)).toBe(false);
        expect(existsSync(join(d.runtimeRoot, id))).toBe(false);
        expect(mountsUnder(d.runtimeRoot)).toEqual([]);
      });
    });
  },
);

async function waitFor(check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('timed out waiting');
}
