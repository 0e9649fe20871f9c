import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CTR,
  DOCKERD,
  DockerDaemon,
  engineMissing,
  IMAGE,
  mountsUnder,
  PODMAN,
  PODMAN_ULIMITS,
  PodmanStore,
  RUNC,
  runCommand,
} from '../support/engines.js';
import { GUEST_DIR, KAPSEL, processesMentioning, vmMissing } from '../support/kapsel-cli.js';

const guestRelease = (): string => readFileSync(join(GUEST_DIR, 'kernel-release'), 'utf8').trim();
const RUNTIMES: [string, string][] = [
  ['runc', RUNC],
  ['kapsel', KAPSEL],
];

const skipCtr = engineMissing(DOCKERD, CTR) ?? vmMissing();

/** containerd's own client with --runc-binary: the shim calls kapsel as it calls runc. */
describe.skipIf(skipCtr !== undefined)(
  `ctr run --runc-binary${skipCtr ? ` (skipped: ${skipCtr})` : ''}`,
  () => {
    let d: DockerDaemon;
    beforeAll(async () => {
      // dockerd's managed containerd is the containerd; the image comes from docker save.
      d = await DockerDaemon.start();
      await d.importImage();
      const tar = join(d.dir, 'image.tar');
      expect((await d.docker(['save', '-o', tar, IMAGE])).code).toBe(0);
      const r = await d.ctr(['images', 'import', '--snapshotter', 'native', tar]);
      expect(r.stderr).toBe('');
    });
    afterAll(async () => {
      await d.stop();
    });

    describe.each(RUNTIMES)('with %s', (name, binary) => {
      const ref = `docker.io/library/${IMAGE}`;
      const run = (...args: string[]): ReturnType<typeof runCommand> =>
        d.ctr(['run', '--snapshotter', 'native', '--runc-binary', binary, ...args]);
      const kernel = (): string => (name === 'kapsel' ? guestRelease() : release());

      it('runs to the end with its output, environment, cwd and exit code', async () => {
        const r = await run(
          '--rm',
          '--env',
          'FOO=bar',
          '--cwd',
          '/tmp',
          ref,
          `ctr-${name}-1`,
          'sh',
          '-c',
          'echo "$(uname -r) $FOO $(pwd)"; exit 5',
        );
        expect(r.stdout).toBe(`${kernel()} bar /tmp\n`);
        expect(r.code).toBe(5);
      });

      it('takes a signal through ctr task kill, exits with the status of its trap, leaves nothing', async () => {
        const id = `ctr-${name}-2`;
        // ctr run waits and exits with the task's status; the kill comes from another client.
        const running = run(
          '--rm',
          ref,
          id,
          'sh',
          '-c',
          'trap "exit 7" TERM; echo up; while :; do sleep 0.1; done',
        );
        for (let i = 0; i < 300; i++) {
          if (/RUNNING/.test((await d.ctr(['task', 'ls'])).stdout)) break;
          await new Promise((res) => setTimeout(res, 100));
        }
        expect((await d.ctr(['task', 'ls'])).stdout).toMatch(
          new RegExp(`${id}\\s+\\d+\\s+RUNNING`),
        );
        expect((await d.ctr(['task', 'kill', '-s', 'SIGTERM', id])).code).toBe(0);
        const r = await running;
        expect(r.stdout).toBe('up\n');
        expect(r.code).toBe(7);
        expect((await d.ctr(['containers', 'ls', '-q'])).stdout).toBe('');
        if (name === 'kapsel') {
          expect(processesMentioning(KAPSEL).filter((p) => p.includes(id))).toEqual([]);
          expect(mountsUnder(d.dir).filter((m) => m.includes('/.vm/'))).toEqual([]);
        }
      });
    });
  },
);

const skipPodman = engineMissing(PODMAN) ?? vmMissing();

/** Podman (through conmon) with --runtime. */
describe.skipIf(skipPodman !== undefined)(
  `podman --runtime${skipPodman ? ` (skipped: ${skipPodman})` : ''}`,
  () => {
    let store: PodmanStore | undefined;
    const podman = (...args: string[]): ReturnType<typeof runCommand> => {
      if (store === undefined) throw new Error('no podman store');
      return store.podman(...args);
    };
    beforeAll(async () => {
      store = await PodmanStore.create();
    });
    afterAll(async () => {
      await store?.remove();
    });

    describe.each(RUNTIMES)('with %s', (name, binary) => {
      const run = (...args: string[]): ReturnType<typeof runCommand> =>
        podman('run', '--runtime', binary, '--network', 'none', ...PODMAN_ULIMITS, ...args);
      const kernel = (): string => (name === 'kapsel' ? guestRelease() : release());

      it('run --rm: output, exit code, --hostname, -e, -w, -u', async () => {
        const r = await run(
          '--rm',
          '--hostname',
          'pod',
          '-e',
          'FOO=bar',
          '-w',
          '/tmp',
          '-u',
          '1000:1000',
          IMAGE,
          'sh',
          '-c',
          'echo "$(uname -r) $(hostname) $FOO $(pwd) $(id -u)"; exit 6',
        );
        expect(r.stdout).toBe(`${kernel()} pod bar /tmp 1000\n`);
        expect(r.code).toBe(6);
      });

      it('run -d, logs, stop (SIGTERM), rm -f', async () => {
        const c = `pm-${name}`;
        const r = await run(
          '-d',
          '--name',
          c,
          IMAGE,
          'sh',
          '-c',
          'trap "echo bye; exit 0" TERM; echo hi; while :; do sleep 0.1; done',
        );
        expect(r.code).toBe(0);
        for (let i = 0; i < 100 && !(await podman('logs', c)).stdout.includes('hi'); i++) {
          await new Promise((res) => setTimeout(res, 100));
        }
        expect((await podman('stop', c)).code).toBe(0);
        expect((await podman('inspect', '-f', '{{.State.ExitCode}}', c)).stdout.trim()).toBe('0');
        expect((await podman('logs', c)).stdout).toBe('hi\nbye\n');
        expect((await podman('rm', '-f', c)).code).toBe(0);
        const s = await run('-d', '--name', c, IMAGE, 'sleep', '1000');
        expect(s.code).toBe(0);
        expect((await podman('rm', '-f', c)).code).toBe(0);
        if (name === 'kapsel') {
          expect(processesMentioning(KAPSEL).filter((p) => p.includes('__monitor'))).toEqual([]);
        }
      });
    });
  },
);
