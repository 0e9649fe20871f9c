// Issue 10 under Docker, with runc to prove each test right: `docker update`
// (Docker sends the whole resources struct, unset fields as zero) and the
// rlimits a container gets when Docker sends none (the engine's own).
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DOCKERD, DockerDaemon, engineMissing, IMAGE } from '../support/engines.js';
import { vmMissing } from '../support/kapsel-cli.js';

const skip = engineMissing(DOCKERD, '/usr/bin/docker') ?? vmMissing();

describe.skipIf(skip !== undefined)(
  `docker update and default rlimits${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let d: DockerDaemon;
    const limits = new Map<string, string>();
    beforeAll(async () => {
      d = await DockerDaemon.start();
      await d.importImage();
    });
    afterAll(async () => {
      const ids = (await d.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await d.docker(['rm', '-f', ...ids]);
      await d.stop();
    });

    describe.each(['runc', 'kapsel'])('with %s', (runtime) => {
      it('docker update --memory 80m --memory-swap 80m and --restart always work, the limit seen inside', async () => {
        const name = `upd-${runtime}`;
        const r = await d.docker([
          'run',
          '-d',
          '--network',
          'none',
          '--runtime',
          runtime,
          '--name',
          name,
          IMAGE,
          'sleep',
          '1000',
        ]);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        const mem = await d.docker(['update', '--memory', '80m', '--memory-swap', '80m', name]);
        expect(mem.stderr).toBe('');
        expect(mem.code).toBe(0);
        const restart = await d.docker(['update', '--restart', 'always', name]);
        expect(restart.stderr).toBe('');
        expect(restart.code).toBe(0);
        const inside = await d.docker([
          'exec',
          name,
          'sh',
          '-c',
          'cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes',
        ]);
        expect(inside.stdout.trim()).toBe(String(80 * 1024 * 1024));
        expect((await d.docker(['rm', '-f', name])).code).toBe(0);
      });

      it('a container gets the rlimits the engine has when Docker sends none', async () => {
        const r = await d.docker([
          'run',
          '--rm',
          '--network',
          'none',
          '--runtime',
          runtime,
          IMAGE,
          'cat',
          '/proc/self/limits',
        ]);
        expect(r.code).toBe(0);
        limits.set(runtime, r.stdout);
      });
    });

    it('rlimits are the same with kapsel as with runc', () => {
      expect(limits.get('kapsel')).toBe(limits.get('runc'));
      // Both are the engine's, which it inherited from this test.
      const max = (s: string | undefined): string =>
        (s ?? '')
          .split('\n')
          .filter((l) => l.startsWith('Max open files'))
          .join('');
      expect(max(limits.get('runc'))).toBe(max(readFileSync('/proc/self/limits', 'utf8')));
    });
  },
);
