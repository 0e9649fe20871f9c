import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServiceError } from '@grpc/grpc-js';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LinuxResources } from '../../oci/resources.js';
import type { Spec } from '../../oci/spec.js';
import type { Event } from '../../proto/generated/agent.js';
import { Sandbox } from '../../runtime/src/sandbox/boot.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { vmMissing } from '../support/kapsel-cli.js';
import { testSpec } from '../support/spec.js';
import { rootfsShareSpec } from '../support/guest.js';

const skip = vmMissing();
const MiB = 1024 * 1024;

/** Lines of a stream as they come, for waiting on one. */
class Lines {
  readonly lines: string[] = [];
  private buf = '';
  readonly done: Promise<void>;
  constructor(source: AsyncIterable<Buffer>) {
    this.done = (async () => {
      for await (const chunk of source) {
        this.buf += chunk.toString();
        const parts = this.buf.split('\n');
        this.buf = parts.pop() ?? '';
        this.lines.push(...parts);
      }
      if (this.buf !== '') this.lines.push(this.buf);
    })();
  }
  async waitFor(pred: (line: string) => boolean): Promise<string> {
    for (;;) {
      const found = this.lines.find(pred);
      if (found !== undefined) return found;
      await sleep(50);
    }
  }
  get text(): string {
    return [...this.lines, this.buf].join('\n');
  }
}

describe.skipIf(skip !== undefined)(
  `cgroups in a real VM${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const log = pino({ level: 'warn' });
    const root = mkdtempSync(join(tmpdir(), 'kapsel-cg-'));
    const rootfs = makeBusyboxRootfs();
    let sandbox: Sandbox;
    const events: Event[] = [];
    let cancelEvents: () => void = () => undefined;

    beforeAll(async () => {
      sandbox = await Sandbox.start({ stateDir: root, shareDir: rootfs, log });
      const sub = sandbox.agent.events();
      cancelEvents = sub.cancel;
      void (async () => {
        for await (const e of sub.events) events.push(e);
      })();
    });

    afterAll(async () => {
      cancelEvents();
      await sandbox.stop();
      rmSync(root, { recursive: true, force: true });
      rmSync(rootfs, { recursive: true, force: true });
    });

    function spec(
      id: string,
      args: string[],
      resources?: LinuxResources,
      edit?: (s: Spec) => void,
    ): string {
      const s = testSpec(rootfs, args);
      if (resources !== undefined) s.linux = { ...s.linux, resources };
      edit?.(s);
      return JSON.stringify(rootfsShareSpec(id, s).spec);
    }

    /** Creates and starts a container; its stdout/stderr as Lines. */
    async function start(
      id: string,
      args: string[],
      resources?: LinuxResources,
      edit?: (s: Spec) => void,
    ) {
      const { agent } = sandbox;
      const guest = rootfsShareSpec(id, testSpec(rootfs, args));
      await agent.createContainer({
        containerId: id,
        ociSpecJson: spec(id, args, resources, edit),
        storages: guest.storages,
      });
      const out = new Lines(agent.readOutput('stdout', id));
      const err = new Lines(agent.readOutput('stderr', id));
      await agent.startContainer(id);
      return { out, err };
    }

    it('OOM-kills a container limited to 64 MiB that allocates 200 MiB: exit 137, the host sees the event', async () => {
      const id = 'oom';
      // The init itself (dd, exec'd) touches a 200 MiB buffer in one read():
      // the OOM killer picks it and its exit shows SIGKILL. Growing a shell
      // string instead ends in minutes of reclaim thrash of the binaries'
      // file pages near the limit under TCG before the OOM killer acts.
      await start(id, ['sh', '-c', 'exec dd if=/dev/zero of=/dev/null bs=200M count=1'], {
        memory: { limit: 64 * MiB, swap: 64 * MiB },
      });
      const exit = await sandbox.agent.waitProcess(id);
      expect(exit).toEqual({ exitCode: 137, signal: 9 });
      const stats = await sandbox.agent.statsContainer(id);
      expect(stats.memory?.oomKills).toBeGreaterThanOrEqual(1);
      expect(stats.memory?.limit).toBe(64 * MiB);
      for (let i = 0; i < 100 && !events.some((e) => e.containerId === id); i++) await sleep(50);
      expect(events.find((e) => e.containerId === id)).toMatchObject({
        containerId: id,
        type: 'oom',
      });
      await sandbox.agent.removeContainer(id);
    });

    it('raises the memory limit of a running container (UpdateContainer)', async () => {
      const id = 'update';
      const { out } = await start(
        id,
        // dd touches a 100 MiB buffer at once (a shell string takes minutes under TCG).
        [
          'sh',
          '-c',
          'read go; dd if=/dev/zero of=/dev/null bs=100M count=1 2>/dev/null && echo len=104857600',
        ],
        { memory: { limit: 64 * MiB } },
      );
      await sandbox.agent.updateContainer(id, { memory: { limit: 512 * MiB } });
      expect((await sandbox.agent.statsContainer(id)).memory?.limit).toBe(512 * MiB);
      await sandbox.agent.writeStdin(id, Buffer.from('go\n'));
      const exit = await sandbox.agent.waitProcess(id);
      await out.done;
      expect(out.text).toContain('len=104857600');
      expect(exit.exitCode).toBe(0);
      await sandbox.agent.removeContainer(id);
    });

    it('stops a fork loop at a pids limit of 20', async () => {
      const id = 'pids';
      const { err } = await start(
        id,
        [
          'sh',
          '-c',
          // The loop runs in a subshell (a failed fork ends the shell that
          // tried it); the init then becomes a sleep without forking.
          '(i=0; while [ $i -lt 40 ]; do sleep 60 & i=$((i+1)); done); exec sleep 60',
        ],
        { pids: { limit: 20 } },
      );
      await err.waitFor((l) => /can't fork|Resource temporarily unavailable/.test(l));
      const stats = await sandbox.agent.statsContainer(id);
      expect(stats.pids?.limit).toBe(20);
      expect(stats.pids?.current).toBeLessThanOrEqual(20);
      expect(stats.pids?.current).toBeGreaterThanOrEqual(15);
      await sandbox.agent.removeContainer(id);
    });

    it('throttles a busy loop with cpu.max (throttle counters rise)', async () => {
      const id = 'cpu';
      await start(id, ['sh', '-c', 'while :; do :; done'], {
        cpu: { quota: 10000, period: 100000 },
      });
      await sleep(1500);
      const a = await sandbox.agent.statsContainer(id);
      await sleep(1500);
      const b = await sandbox.agent.statsContainer(id);
      const ta = a.cpu?.throttling;
      const tb = b.cpu?.throttling;
      expect(ta?.throttledPeriods).toBeGreaterThan(0);
      expect(tb?.throttledPeriods ?? 0).toBeGreaterThan(ta?.throttledPeriods ?? 0);
      expect(tb?.throttledTimeNs ?? 0).toBeGreaterThan(ta?.throttledTimeNs ?? 0);
      // 10% of one CPU: well under half of the wall time between samples.
      const used = (b.cpu?.usage?.totalNs ?? 0) - (a.cpu?.usage?.totalNs ?? 0);
      process.stdout.write(
        `cpu.max 10%: ${((used / 1.5e9) * 100).toFixed(1)}% of a CPU used, ${tb?.throttledPeriods} periods throttled\n`,
      );
      expect(used).toBeLessThan(0.5 * 1.5e9);
      await sandbox.agent.removeContainer(id);
    });

    it('denies a device by default and allows it once an update adds a rule', async () => {
      const id = 'devices';
      const { out, err } = await start(id, [
        'sh',
        '-c',
        // /dev/kmsg (c 1:11) is not among the default devices.
        'mknod /dev/k c 1 11; head -c 1 /dev/k >/dev/null && echo first=ok || echo first=denied; read go; head -c 1 /dev/k >/dev/null && echo second=ok || echo second=denied',
      ]);
      await out.waitFor((l) => l.startsWith('first='));
      expect(out.lines).toContain('first=denied');
      expect(err.text).toContain('Operation not permitted');
      await sandbox.agent.updateContainer(id, {
        devices: [{ allow: true, type: 'c', major: 1, minor: 11, access: 'r' }],
      });
      await sandbox.agent.writeStdin(id, Buffer.from('go\n'));
      await sandbox.agent.waitProcess(id);
      await out.done;
      expect(out.lines).toContain('second=ok');
      await sandbox.agent.removeContainer(id);
    });

    it('pause stops a counter loop and resume restarts it', async () => {
      const id = 'pause';
      const { out } = await start(id, [
        'sh',
        '-c',
        'i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done',
      ]);
      await out.waitFor((l) => l === '3');
      await sandbox.agent.pauseContainer(id);
      await sleep(300); // output already in flight
      const frozenAt = out.lines.length;
      await sleep(1500);
      expect(out.lines.length).toBe(frozenAt);
      await sandbox.agent.resumeContainer(id);
      await out.waitFor((l) => Number(l) > frozenAt + 2);
      await sandbox.agent.removeContainer(id);
    });

    it('refuses invalid resources naming the field and leaves no cgroup or process behind', async () => {
      const cases: [LinuxResources, string][] = [
        [{ memory: { limit: -5 } }, 'linux.resources.memory.limit'],
        [
          { cpu: { cpus: '0-999' } },
          'linux.resources.cpu.cpus: "0-999" names CPUs the guest does not have',
        ],
        // Period 0 means unset, as runc's fs2 reads it; 10 µs is below the kernel's 1 ms.
        [{ cpu: { quota: 50000, period: 10 } }, 'linux.resources.cpu.period'],
      ];
      for (const [resources, field] of cases) {
        const err = await start('bad', ['sleep', '60'], resources).then(
          () => undefined,
          (e: unknown) => e as ServiceError,
        );
        expect(err?.details).toContain(field);
      }
      // A checker that sees the whole guest: no pid namespace, so PID 1 is the
      // guest's, and through its root the guest's whole cgroup tree (its own
      // cgroup namespace shows only its own cgroup).
      const { out } = await start(
        'checker',
        [
          'sh',
          '-c',
          'find /proc/1/root/sys/fs/cgroup/kapsel -mindepth 1 -type d; echo procs; ps -o args',
        ],
        undefined,
        (s) => {
          s.linux = { namespaces: [{ type: 'mount' }] };
          delete s.hostname;
          s.mounts = [
            ...(s.mounts ?? []),
            { destination: '/sys/fs/cgroup', type: 'cgroup2', source: 'cgroup2' },
          ];
        },
      );
      await sandbox.agent.waitProcess('checker');
      await out.done;
      const [cgroups, procs] = out.text.split('procs\n');
      expect((cgroups ?? '').split('\n').filter((l) => l !== '')).toEqual([
        '/proc/1/root/sys/fs/cgroup/kapsel/checker',
      ]);
      expect(procs).not.toContain('sleep 60');
      await sandbox.agent.removeContainer('checker');
    });
  },
);
