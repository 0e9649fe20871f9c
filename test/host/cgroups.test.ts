import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../runtime/src/sandbox/agent-client.js';
import { isRoot, type StandaloneAgent } from '../support/agent-process.js';
import { startAgentFixture, stopAgentFixture } from '../support/agent-fixture.js';
import { busyboxMissing, makeBusyboxRootfs } from '../support/busybox.js';
import { cgroup2Root, privateCgroup2Root, removePrivateCgroup2Root } from '../support/cgroup.js';
import { testSpec } from '../support/spec.js';

const cgroup2 = cgroup2Root;

const skip = !isRoot
  ? 'needs root'
  : cgroup2 === undefined
    ? 'no cgroup v2 mount on this host'
    : busyboxMissing();

async function collect(stream: AsyncIterable<Buffer>): Promise<string> {
  let out = '';
  for await (const chunk of stream) out += chunk.toString();
  return out;
}

// Runs whatever a cgroup v2 hierarchy offers without controllers (a hybrid
// host binds memory/cpu/pids to v1): cgroup placement, the eBPF device
// filter, the freezer, cpu.stat and removal. Limits are tested in the VM.
describe.skipIf(skip !== undefined)(
  `agent cgroups on this host's cgroup v2${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let root = '/';
    let agent: StandaloneAgent;
    let client: AgentClient;
    let rootfs: string;

    beforeAll(async () => {
      root = privateCgroup2Root('cgroups') ?? '/';
      ({ agent, client, rootfs } = await startAgentFixture(makeBusyboxRootfs, {
        KAPSEL_CGROUP_ROOT: root,
      }));
    });

    afterAll(async () => {
      await stopAgentFixture({ agent, client, rootfs });
      removePrivateCgroup2Root(root);
    });

    async function create(id: string, args: string[]) {
      await client.createContainer({
        containerId: id,
        ociSpecJson: JSON.stringify(testSpec(rootfs, args)),
        storages: [],
      });
      const stdout = collect(client.readOutput('stdout', id));
      const stderr = collect(client.readOutput('stderr', id));
      return { stdout, stderr };
    }

    it('puts the init in kapsel/<id> before it starts, and removes the cgroup with the container', async () => {
      const id = `cg-place-${process.pid}`;
      const dir = join(root, 'kapsel', id);
      const out = await create(id, ['cat', '/proc/self/cgroup']);
      expect(readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim()).toMatch(/^\d+$/);
      await client.startContainer(id);
      await client.waitProcess(id);
      // It always gets a cgroup namespace rooted at its own cgroup.
      expect(await out.stdout).toContain('0::/\n');
      const stats = await client.statsContainer(id);
      expect(stats.cpu?.usage?.totalNs).toBeGreaterThan(0);
      await client.removeContainer(id);
      expect(existsSync(dir)).toBe(false);
    });

    it('denies a device outside the defaults until an update allows it (eBPF filter)', async () => {
      const id = `cg-dev-${process.pid}`;
      const out = await create(id, [
        'sh',
        '-c',
        'mknod /dev/k c 1 11; head -c 1 /dev/k >/dev/null && echo first=ok || echo first=denied; head -c 1 /dev/null; read go; head -c 1 /dev/k >/dev/null && echo second=ok || echo second=denied',
      ]);
      await client.startContainer(id);
      await sleep(300);
      await client.updateContainer(id, {
        devices: [{ allow: true, type: 'c', major: 1, minor: 11, access: 'r' }],
      });
      await client.writeStdin(id, Buffer.from('go\n'));
      const exit = await client.waitProcess(id);
      const stdout = await out.stdout;
      expect(stdout).toContain('first=denied');
      expect(stdout).toContain('second=ok');
      expect(await out.stderr).toContain('Operation not permitted');
      expect(exit.exitCode).toBe(0);
      await client.removeContainer(id);
    });

    it('pauses and resumes a counter through cgroup.freeze', async () => {
      const id = `cg-pause-${process.pid}`;
      let text = '';
      await client.createContainer({
        containerId: id,
        ociSpecJson: JSON.stringify(
          testSpec(rootfs, ['sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done']),
        ),
        storages: [],
      });
      const reading = (async () => {
        for await (const c of client.readOutput('stdout', id)) text += c.toString();
      })();
      await client.startContainer(id);
      await sleep(400);
      await client.pauseContainer(id);
      const events = readFileSync(join(root, 'kapsel', id, 'cgroup.events'), 'utf8');
      expect(events).toContain('frozen 1');
      await sleep(100);
      const frozen = text.length;
      await sleep(600);
      expect(text.length).toBe(frozen);
      // Pausing twice is refused: it is paused, not running.
      await expect(client.pauseContainer(id)).rejects.toThrow('is paused, not running');
      await client.resumeContainer(id);
      await sleep(600);
      expect(text.length).toBeGreaterThan(frozen);
      await client.removeContainer(id);
      await reading;
      expect(existsSync(join(root, 'kapsel', id))).toBe(false);
    });

    it('refuses resources naming the field and leaves no cgroup', async () => {
      const id = `cg-bad-${process.pid}`;
      const spec = testSpec(rootfs, ['true']);
      spec.linux = { ...spec.linux, resources: { cpu: { quota: 50000, period: 10 } } };
      await expect(
        client.createContainer({
          containerId: id,
          ociSpecJson: JSON.stringify(spec),
          storages: [],
        }),
      ).rejects.toThrow('linux.resources.cpu.period');
      expect(existsSync(join(root, 'kapsel', id))).toBe(false);
    });
  },
);
