import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { podKey, socketPathOf, vmDirOfPod } from '../../runtime/src/shimv2/address.js';
import { CONTAINERD, PrivateContainerd, SHIM_IMAGE } from '../support/containerd.js';
import { CTR, engineMissing, mountsUnder, RUNC } from '../support/engines.js';
import { GUEST_DIR, processesMentioning, ROOT, vmMissing } from '../support/kapsel-cli.js';
import { TestNetns } from '../support/netns.js';

const SHIM = join(ROOT, 'bin', 'containerd-shim-kapsel-v2');
const skip =
  engineMissing(CONTAINERD, CTR, RUNC) ??
  vmMissing() ??
  (existsSync(join(ROOT, 'build/dist/shimv2.mjs')) ? undefined : 'build/dist/shimv2.mjs missing');
const NS = 'kapsel-test';
const guestRelease = (): string => readFileSync(join(GUEST_DIR, 'kernel-release'), 'utf8').trim();

/** Each runtime by containerd's name for it: runc's own shim, and ours. */
const RUNTIMES: [string, string][] = [
  ['runc', 'io.containerd.runc.v2'],
  ['kapsel', 'io.containerd.kapsel.v2'],
];

/** Memory limit and usage from `ctr task metrics --format json`, cgroup v1 (runc here) or v2 (the guest). */
function memoryOf(json: string): { usage: number; limit: number } {
  const m = (JSON.parse(json) as { memory?: Record<string, unknown> }).memory ?? {};
  if (typeof m['usage'] === 'object' && m['usage'] !== null) {
    const u = m['usage'] as { usage?: number; limit?: number };
    return { usage: u.usage ?? 0, limit: u.limit ?? 0 };
  }
  return { usage: Number(m['usage'] ?? 0), limit: Number(m['usage_limit'] ?? 0) };
}

describe.skipIf(skip !== undefined)(
  `containerd shim v2${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let c: PrivateContainerd;
    beforeAll(async () => {
      c = await PrivateContainerd.start();
      await c.importBusybox();
    });
    afterAll(async () => {
      await c.stop();
      // The parents runc and kapsel made for the tasks' cgroups (runc leaves parents).
      for (const h of readdirSync('/sys/fs/cgroup')) {
        for (const parent of ['kapsel-shimcg', NS]) {
          try {
            rmdirSync(join('/sys/fs/cgroup', h, parent));
          } catch {
            // Not made in this hierarchy.
          }
        }
      }
    });

    /** What the kapsel shim leaves of task `id` on the host: processes, its socket and VM directory, mounts. */
    const leftovers = (id: string): string[] => {
      const key = podKey(c.address, NS, id);
      return [
        ...processesMentioning(vmDirOfPod(key)),
        ...processesMentioning(`-id ${id} `).filter((p) => p.includes(SHIM)),
        ...[socketPathOf(key), vmDirOfPod(key)].filter((p) => existsSync(p)),
        ...mountsUnder(vmDirOfPod(key)),
        ...mountsUnder(join(c.dir, 'state')),
      ];
    };

    /** Kills task `id`, deletes it once it has stopped, then its container, as a test's cleanup. */
    const removeTask = async (id: string): Promise<void> => {
      await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
      for (let i = 0; i < 50; i++) {
        if ((await c.ctr(['task', 'delete', id])).code === 0) break;
        await sleep(200);
      }
      await c.ctr(['container', 'delete', id]);
    };

    /** `ctr run -d` of a kapsel pod running `sleep` in host cgroup /kapsel-shimcg/ID. */
    const runSleepingPod = async (id: string): Promise<void> => {
      const r = await c.ctr([
        'run',
        '--runtime',
        'io.containerd.kapsel.v2',
        '-d',
        '--cgroup',
        `/kapsel-shimcg/${id}`,
        SHIM_IMAGE,
        id,
        'sleep',
        '100000',
      ]);
      expect(r.stderr).toBe('');
    };

    /** Polls `ctr task ls` (up to 20 s) until task `id` is STOPPED; fails if it never is. */
    const waitTaskStopped = async (id: string): Promise<void> => {
      let ls = '';
      for (let i = 0; i < 100; i++) {
        ls = (await c.ctr(['task', 'ls'])).stdout;
        if (new RegExp(`${id}\\s+\\d+\\s+STOPPED`).test(ls)) break;
        await sleep(200);
      }
      expect(ls).toMatch(new RegExp(`${id}\\s+\\d+\\s+STOPPED`));
    };

    /** SIGKILLs the pod's `proc` (pids.json) and waits for ctr to show the task STOPPED; its pid. */
    const killPodProcess = async (id: string, proc: string): Promise<number> => {
      const key = podKey(c.address, NS, id);
      const pids = JSON.parse(readFileSync(join(vmDirOfPod(key), 'pids.json'), 'utf8')) as {
        name: string;
        pid: number;
      }[];
      const victim = pids.find((p) => p.name === proc);
      expect(victim, JSON.stringify(pids)).toBeDefined();
      process.kill(victim?.pid ?? 0, 'SIGKILL');
      await waitTaskStopped(id);
      return victim?.pid ?? 0;
    };

    /** The task's bundle directory, where the shim keeps kapsel-shim.log. */
    const bundleOf = (id: string): string =>
      join(c.dir, 'state', 'io.containerd.runtime.v2.task', NS, id);

    /** The shim log of task `id` once it holds `text` (or after 5 s). */
    const shimLogWith = async (id: string, text: string): Promise<string> => {
      let log = '';
      for (let i = 0; i < 50 && !log.includes(text); i++) {
        log = readFileSync(join(bundleOf(id), 'kapsel-shim.log'), 'utf8');
        if (!log.includes(text)) await sleep(100);
      }
      return log;
    };

    describe.each(RUNTIMES)('with %s', (name, runtime) => {
      const run = (...args: string[]): ReturnType<PrivateContainerd['ctr']> =>
        c.ctr(['run', '--runtime', runtime, ...args]);
      const runWithInput = (
        input: string,
        ...args: string[]
      ): ReturnType<PrivateContainerd['ctr']> =>
        c.ctr(['run', '--runtime', runtime, ...args], input);

      it('ctr run: output on stdout and stderr, the exit code, stdin, the image rootfs', async () => {
        const id = `${name}-run`;
        const r = await runWithInput(
          'hello\n',
          '--rm',
          SHIM_IMAGE,
          id,
          'sh',
          '-c',
          'cat /marker; read line; echo "got $line"; uname -r; echo oops >&2; exit 3',
        );
        expect(r.stderr).toBe('oops\n');
        const [marker, got, kernel] = r.stdout.split('\n');
        expect(marker).toBe('kapsel-test-rootfs');
        expect(got).toBe('got hello');
        if (name === 'kapsel') expect(kernel).toBe(guestRelease());
        expect(r.code).toBe(3);
        if (name === 'kapsel') expect(leftovers(id)).toEqual([]);
      });

      describe('a running task', () => {
        const id = `${name}-long`;
        beforeAll(async () => {
          const r = await run(
            '-d',
            '--memory-limit',
            String(96 << 20),
            SHIM_IMAGE,
            id,
            'sleep',
            '100000',
          );
          expect(r.stderr).toBe('');
          expect(r.code).toBe(0);
        });
        afterAll(async () => {
          await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
          await c.ctr(['task', 'delete', '-f', id]);
          await c.ctr(['container', 'delete', id]);
        });

        it('exec: output and exit code, stdin', async () => {
          const r = await c.ctr([
            'task',
            'exec',
            '--exec-id',
            'e1',
            id,
            'sh',
            '-c',
            'echo in-exec; exit 5',
          ]);
          expect(r.stdout).toBe('in-exec\n');
          expect(r.code).toBe(5);
          const cat = await c.ctr(['task', 'exec', '--exec-id', 'e2', id, 'cat'], 'piped\n');
          expect(cat.stdout).toBe('piped\n');
          expect(cat.code).toBe(0);
        });

        it('exec -t: a terminal of the size ctr gives it', async () => {
          // script(1) gives ctr a terminal; ctr sends its size as ResizePty.
          const cmd = `stty rows 33 cols 77; ${CTR} -a ${c.address} -n ${NS} task exec -t --exec-id t1 ${id} sh -c 'sleep 2; stty size; tty'`;
          const r = await new Promise<{ out: string; code: number | null }>((resolve) => {
            const p = spawn('script', ['-qec', cmd, '/dev/null'], {
              stdio: ['pipe', 'pipe', 'pipe'],
            });
            let out = '';
            p.stdout.on('data', (d: Buffer) => (out += d.toString()));
            p.on('close', (code) => {
              resolve({ out, code });
            });
          });
          expect(r.out).toContain('33 77');
          expect(r.out).toMatch(/\/dev\/pts\/\d+/);
          expect(r.code).toBe(0);
        });

        it('ps and metrics: the container memory limit and its usage', async () => {
          const ps = await c.ctr(['task', 'ps', id]);
          expect(ps.code).toBe(0);
          expect(ps.stdout.trim().split('\n').length).toBeGreaterThan(1);
          const m = await c.ctr(['task', 'metrics', '--format', 'json', id]);
          expect(m.stderr).toBe('');
          const mem = memoryOf(m.stdout);
          expect(mem.limit).toBe(96 << 20);
          expect(mem.usage).toBeGreaterThan(0);
          expect(mem.usage).toBeLessThan(96 << 20);
        });

        it.runIf(name === 'kapsel')('refuses checkpoint clearly', async () => {
          const r = await c.ctr(['task', 'checkpoint', id]);
          expect(r.code).not.toBe(0);
          expect(r.stderr).toContain('not supported by kapsel');
        });

        it('pause and resume', async () => {
          expect((await c.ctr(['task', 'pause', id])).code).toBe(0);
          expect((await c.ctr(['task', 'ls'])).stdout).toMatch(
            new RegExp(`${id}\\s+\\d+\\s+PAUSED`),
          );
          expect((await c.ctr(['task', 'resume', id])).code).toBe(0);
          expect((await c.ctr(['task', 'ls'])).stdout).toMatch(
            new RegExp(`${id}\\s+\\d+\\s+RUNNING`),
          );
        });

        it('kill: the task stops with 128+9; delete leaves nothing behind', async () => {
          expect((await c.ctr(['task', 'kill', '-s', 'SIGKILL', id])).code).toBe(0);
          await waitTaskStopped(id);
          const del = await c.ctr(['task', 'delete', id]);
          expect(del.stdout + del.stderr).toContain('137');
          expect((await c.ctr(['container', 'delete', id])).code).toBe(0);
          if (name === 'kapsel') {
            for (let i = 0; i < 50 && leftovers(id).length > 0; i++) await sleep(200);
            expect(leftovers(id)).toEqual([]);
          }
        });
      });

      it('a pod (CRI annotations): two containers, one shim, one VM', async () => {
        const pod = `${name}-pod`;
        const app = `${name}-pod-app`;
        const annotate = (type: string): string[] => [
          '--annotation',
          `io.kubernetes.cri.container-type=${type}`,
          '--annotation',
          `io.kubernetes.cri.sandbox-id=${pod}`,
        ];
        const shims = (): string[] =>
          processesMentioning(c.address).filter((p) => p.includes('containerd-shim-'));
        try {
          expect(
            (await run('-d', ...annotate('sandbox'), SHIM_IMAGE, pod, 'sleep', '100000')).code,
          ).toBe(0);
          const r = await run('-d', ...annotate('container'), SHIM_IMAGE, app, 'sleep', '100000');
          expect(r.stderr).toBe('');
          expect(shims()).toHaveLength(1);
          const e = await c.ctr(['task', 'exec', '--exec-id', 'a1', app, 'uname', '-r']);
          expect(e.code).toBe(0);
          if (name === 'kapsel') {
            expect(e.stdout.trim()).toBe(guestRelease());
            const qemu = processesMentioning(vmDirOfPod(podKey(c.address, NS, pod))).filter((p) =>
              p.includes('qemu-system'),
            );
            expect(qemu).toHaveLength(1);
          }
          const ls = (await c.ctr(['task', 'ls'])).stdout;
          expect(ls).toMatch(new RegExp(`${app}\\s+\\d+\\s+RUNNING`));
          expect(ls).toMatch(new RegExp(`${pod}\\s+\\d+\\s+RUNNING`));
        } finally {
          for (const id of [app, pod]) {
            await removeTask(id);
          }
        }
        if (name === 'kapsel') {
          for (let i = 0; i < 50 && leftovers(pod).length > 0; i++) await sleep(200);
          expect(leftovers(pod)).toEqual([]);
        }
        expect(shims()).toEqual([]);
      });

      it('a pod whose sandbox container is deleted first: the other runs on, the last delete leaves nothing', async () => {
        const pod = `${name}-pod1st`;
        const app = `${name}-pod1st-app`;
        const annotate = (type: string): string[] => [
          '--annotation',
          `io.kubernetes.cri.container-type=${type}`,
          '--annotation',
          `io.kubernetes.cri.sandbox-id=${pod}`,
        ];
        const shims = (): string[] =>
          processesMentioning(c.address).filter((p) => p.includes('containerd-shim-'));
        try {
          expect(
            (await run('-d', ...annotate('sandbox'), SHIM_IMAGE, pod, 'sleep', '100000')).code,
          ).toBe(0);
          expect(
            (await run('-d', ...annotate('container'), SHIM_IMAGE, app, 'sleep', '100000')).code,
          ).toBe(0);
          await removeTask(pod);
          expect((await c.ctr(['task', 'ls'])).stdout).not.toMatch(new RegExp(`^${pod}\\s`, 'm'));
          const e = await c.ctr(['task', 'exec', '--exec-id', 'a1', app, 'sh', '-c', 'echo alive']);
          expect(e.stdout).toBe('alive\n');
          expect(e.code).toBe(0);
          expect(shims()).toHaveLength(1);
        } finally {
          await removeTask(app);
          await removeTask(pod);
        }
        if (name === 'kapsel') {
          for (let i = 0; i < 50 && leftovers(pod).length > 0; i++) await sleep(200);
          expect(leftovers(pod)).toEqual([]);
        }
        for (let i = 0; i < 50 && shims().length > 0; i++) await sleep(200);
        expect(shims()).toEqual([]);
      });

      it('a network namespace by path, as CNI hands one over: the container serves the peer', async () => {
        const id = `${name}-net`;
        const podNs = TestNetns.create('ksp');
        const peer = TestNetns.create('ksq');
        try {
          podNs.link(peer, 'eth0', '10.253.0.2/24', 'peer0', '10.253.0.1/24');
          const r = await run(
            '-d',
            '--with-ns',
            `network:${podNs.path}`,
            SHIM_IMAGE,
            id,
            'sh',
            '-c',
            'echo net-page > /tmp/index.html && exec httpd -f -p 80 -h /tmp',
          );
          expect(r.stderr).toBe('');
          expect(await peer.get('http://10.253.0.2/index.html')).toBe('net-page\n');
          const addr = await c.ctr(['task', 'exec', '--exec-id', 'n1', id, 'ip', '-4', 'addr']);
          expect(addr.stdout).toContain('10.253.0.2/24');
        } finally {
          await removeTask(id);
          podNs.remove();
          peer.remove();
        }
        if (name === 'kapsel') {
          for (let i = 0; i < 50 && leftovers(id).length > 0; i++) await sleep(200);
          expect(leftovers(id)).toEqual([]);
        }
      });

      it('the host cgroup at cgroupsPath holds the task, and goes with delete', async () => {
        const id = `${name}-cg`;
        const path = `/kapsel-shimcg/${id}`;
        const procsOf = (): number[] => {
          const f = join('/sys/fs/cgroup/memory', path, 'cgroup.procs');
          if (!existsSync(f)) return [];
          return readFileSync(f, 'utf8').split('\n').filter(Boolean).map(Number);
        };
        try {
          const r = await run('-d', '--cgroup', path, SHIM_IMAGE, id, 'sleep', '100000');
          expect(r.stderr).toBe('');
          const procs = procsOf();
          if (name === 'runc') {
            // runc puts the container's init there.
            const pid = Number(
              /\S+\s+(\d+)/.exec(
                (await c.ctr(['task', 'ls'])).stdout.split('\n').find((l) => l.startsWith(id)) ??
                  '',
              )?.[1],
            );
            expect(procs).toContain(pid);
          } else {
            // Kata's sandbox_cgroup_only: the shim, QEMU and virtiofsd.
            const key = podKey(c.address, NS, id);
            const named = (what: string): number[] =>
              processesMentioning(vmDirOfPod(key))
                .filter((p) => p.includes(what))
                .map((p) => parseInt(p, 10));
            const shim = processesMentioning(`-id ${id} `)
              .filter((p) => p.includes(SHIM))
              .map((p) => parseInt(p, 10));
            expect(shim).toHaveLength(1);
            for (const pid of [...shim, ...named('qemu-system'), ...named('virtiofsd')]) {
              expect(procs).toContain(pid);
            }
          }
        } finally {
          await removeTask(id);
        }
        for (let i = 0; i < 50 && existsSync(join('/sys/fs/cgroup/memory', path)); i++) {
          await sleep(100);
        }
        expect(existsSync(join('/sys/fs/cgroup/memory', path))).toBe(false);
        if (name === 'kapsel') expect(leftovers(id)).toEqual([]);
      });

      it('an OOM kill is published as /tasks/oom and the task ends with 137', async () => {
        const id = `${name}-oom`;
        const events = spawn(CTR, ['-a', c.address, 'events'], {
          stdio: ['ignore', 'pipe', 'ignore'],
        });
        let seen = '';
        events.stdout.on('data', (d: Buffer) => (seen += d.toString()));
        try {
          await sleep(300);
          // dd holds its whole block in one buffer: 64 MiB against a 32 MiB limit.
          const r = await run(
            '--rm',
            '--memory-limit',
            String(32 << 20),
            SHIM_IMAGE,
            id,
            'dd',
            'if=/dev/zero',
            'of=/dev/null',
            'bs=64M',
            'count=1',
          );
          expect(r.code).toBe(137);
          for (let i = 0; i < 50 && !seen.includes('/tasks/delete'); i++) await sleep(100);
        } finally {
          events.kill();
        }
        const mine = seen.split('\n').filter((l) => l.includes(id));
        expect(mine.some((l) => l.includes('/tasks/oom'))).toBe(true);
        expect(mine.some((l) => l.includes('/tasks/exit'))).toBe(true);
        if (name === 'kapsel') expect(leftovers(id)).toEqual([]);
      });
    });

    it.each([
      ['virtiofsd', 'virtiofsd'],
      ['QEMU', 'qemu'],
    ])(
      'a killed %s ends every task of the pod with 255, names why in the shim log, and delete leaves nothing',
      async (_what, proc) => {
        const id = `kapsel-fault-${proc}`;
        await runSleepingPod(id);
        let deleted = false;
        try {
          const pid = await killPodProcess(id, proc);
          // The task ends as its connection drops; the reason follows once
          // the supervisor has seen every death (and the console drained).
          const reason = `${proc} (pid ${pid}) killed by SIGKILL`;
          expect(await shimLogWith(id, reason)).toContain(reason);
          expect(existsSync(join(bundleOf(id), 'console.log'))).toBe(true);
          const del = await c.ctr(['task', 'delete', id]);
          deleted = true;
          expect(del.stdout + del.stderr).toContain('255');
        } finally {
          if (!deleted) {
            await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
            await c.ctr(['task', 'delete', '-f', id]);
          }
          await c.ctr(['container', 'delete', id]);
        }
        for (let i = 0; i < 50 && leftovers(id).length > 0; i++) await sleep(200);
        expect(leftovers(id)).toEqual([]);
        expect(existsSync(join('/sys/fs/cgroup/memory/kapsel-shimcg', id))).toBe(false);
      },
    );

    it('a task delete after a fault returns with the pod host cgroup gone, though a process held it a while', async () => {
      // The fault's own release of the VM removes the host cgroup, waiting
      // for its processes to leave; a Delete (and the shim's shutdown after
      // it) that came meanwhile returned at once, and a shim that then exited
      // left the cgroup for good. A process outside the pod holds the
      // memory cgroup for 3 s to widen that window.
      const id = 'kapsel-fault-held';
      const cg = join('/sys/fs/cgroup/memory/kapsel-shimcg', id);
      await runSleepingPod(id);
      const holder = spawn('sleep', ['3'], { stdio: 'ignore' });
      let deleted = false;
      try {
        writeFileSync(join(cg, 'cgroup.procs'), String(holder.pid));
        await killPodProcess(id, 'qemu');
        // The fault's release has begun once its reason is logged.
        await shimLogWith(id, 'killed by SIGKILL');
        const del = await c.ctr(['task', 'delete', id]);
        deleted = true;
        expect(del.stdout + del.stderr).toContain('255');
        expect(existsSync(cg)).toBe(false);
      } finally {
        holder.kill('SIGKILL');
        if (!deleted) await c.ctr(['task', 'delete', '-f', id]);
        await c.ctr(['container', 'delete', id]);
        for (const h of readdirSync('/sys/fs/cgroup')) {
          try {
            rmdirSync(join('/sys/fs/cgroup', h, 'kapsel-shimcg', id));
          } catch {
            // Gone, as it should be.
          }
        }
      }
      for (let i = 0; i < 50 && leftovers(id).length > 0; i++) await sleep(200);
      expect(leftovers(id)).toEqual([]);
    });
  },
);
