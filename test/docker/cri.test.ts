import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContainerState, NamespaceMode, PodSandboxState } from '../../proto/generated/cri.js';
import { podKey, socketPathOf, vmDirOfPod } from '../../runtime/src/shimv2/address.js';
import { CONTAINERD, SHIM_IMAGE } from '../support/containerd.js';
import { CNI_BIN_DIR, CRI_NS, CriNode, cniNetnsEntries } from '../support/cri.js';
import { CTR, engineMissing, mountsUnder, RUNC, runCommand } from '../support/engines.js';
import { GUEST_DIR, processesMentioning, ROOT, vmMissing } from '../support/kapsel-cli.js';
import { hostNetworkSnapshot } from '../support/netns.js';

const cniMissing = ['bridge', 'host-local', 'loopback'].every((p) =>
  existsSync(join(CNI_BIN_DIR, p)),
)
  ? undefined
  : `CNI plugins missing in ${CNI_BIN_DIR} (apt-get install containernetworking-plugins)`;
const skip =
  engineMissing(CONTAINERD, RUNC) ??
  cniMissing ??
  vmMissing() ??
  (existsSync(join(ROOT, 'build/dist/shimv2.mjs')) ? undefined : 'build/dist/shimv2.mjs missing');
const guestRelease = (): string => readFileSync(join(GUEST_DIR, 'kernel-release'), 'utf8').trim();

/**
 * kubelet's namespace options for a pod without hostNetwork, hostPID,
 * hostIPC or shareProcessNamespace: each container its own pid namespace.
 */
const NAMESPACES = {
  securityContext: {
    namespaceOptions: {
      network: NamespaceMode.POD,
      pid: NamespaceMode.CONTAINER,
      ipc: NamespaceMode.POD,
    },
  },
};

/** The web container's memory limit (CRI linux.resources.memory_limit_in_bytes). */
const WEB_LIMIT = 96n << 20n;
/** A CRI log line (kubelet's format: RFC3339Nano time, stream, F(ull) or P(artial), text). */
const CRI_LOG_LINE =
  /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) (stdout|stderr) [FP] /;

/**
 * Kubernetes' path, as kubelet drives it: containerd's CRI plugin (a
 * private containerd in a network namespace of the test's, CNI bridge
 * networking) running a pod of two containers with runtime handler `runc`
 * and, the same assertions, `kapsel` (io.containerd.kapsel.v2: the pod in
 * one VM behind one shim).
 */
describe.skipIf(skip !== undefined)(`CRI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let node: CriNode;
  let hostBefore: string;
  let cniNetnsBefore: string[];
  beforeAll(async () => {
    hostBefore = hostNetworkSnapshot();
    cniNetnsBefore = cniNetnsEntries();
    node = await CriNode.start();
    await node.containerd.importImage(CRI_NS, SHIM_IMAGE);
  });
  afterAll(async () => {
    await node.stop();
    expect(hostNetworkSnapshot()).toBe(hostBefore);
  });

  /**
   * What a removed pod left on the host (after ~10 s for the shim to go):
   * shims, its QEMU and virtiofsd, socket and VM directory, mounts under
   * containerd's dirs, pinned CNI namespaces, veths, host-local addresses.
   */
  const leftovers = async (pod: string): Promise<string[]> => {
    const key = podKey(node.containerd.address, CRI_NS, pod);
    const found = (): string[] => [
      ...processesMentioning(node.containerd.address).filter((p) => p.includes('containerd-shim-')),
      ...processesMentioning(vmDirOfPod(key)),
      ...[socketPathOf(key), vmDirOfPod(key)].filter((p) => existsSync(p)),
      ...mountsUnder(node.dir),
      ...cniNetnsEntries().filter((n) => !cniNetnsBefore.includes(n)),
      ...node.linksOfKind('veth'),
      ...node.allocatedIps(),
    ];
    for (let i = 0; i < 50 && found().length > 0; i++) await sleep(200);
    return found();
  };

  it('Version: containerd answers CRI runtime.v1', async () => {
    const v = await node.cri.version();
    expect(v.runtimeName).toBe('containerd');
    expect(v.runtimeApiVersion).toBe('v1');
    const images = (await node.cri.listImages()).images.flatMap((i) => i.repoTags);
    expect(images).toContain(SHIM_IMAGE);
  });

  describe.each(['runc', 'kapsel'])('runtime handler %s', (handler) => {
    const logDir = (): string => join(node.dir, 'pods', handler);
    const sandboxConfig = () => ({
      metadata: { name: `web-${handler}`, uid: `uid-${handler}`, namespace: 'default', attempt: 0 },
      hostname: `web-${handler}`,
      logDirectory: logDir(),
      linux: NAMESPACES,
    });
    let pod = '';
    let web = '';
    let writer = '';
    let podIp = '';
    const shims = (): string[] =>
      processesMentioning(node.containerd.address).filter((p) => p.includes('containerd-shim-'));
    const vmDir = (): string => vmDirOfPod(podKey(node.containerd.address, CRI_NS, pod));

    beforeAll(async () => {
      mkdirSync(logDir(), { recursive: true });
      pod = await node.cri.runPodSandbox({ config: sandboxConfig(), runtimeHandler: handler });
      web = await node.cri.createContainer({
        podSandboxId: pod,
        sandboxConfig: sandboxConfig(),
        config: {
          metadata: { name: 'web' },
          image: { image: SHIM_IMAGE },
          command: ['sh', '-c'],
          args: [
            'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 8080 -h /www',
          ],
          logPath: 'web.log',
          linux: { resources: { memoryLimitInBytes: WEB_LIMIT }, ...NAMESPACES },
        },
      });
      writer = await node.cri.createContainer({
        podSandboxId: pod,
        sandboxConfig: sandboxConfig(),
        config: {
          metadata: { name: 'writer' },
          image: { image: SHIM_IMAGE },
          command: ['sh', '-c', 'i=0; while :; do echo "line $i"; i=$((i+1)); sleep 1; done'],
          logPath: 'writer.log',
          linux: NAMESPACES,
        },
      });
      await node.cri.startContainer(web);
      await node.cri.startContainer(writer);
    });
    afterAll(async () => {
      // Only after a failure before the last test: that one removes the pod.
      if (pod !== '') {
        await node.cri.stopPodSandbox(pod).catch(() => undefined);
        await node.cri.removePodSandbox(pod).catch(() => undefined);
      }
    });

    it('RunPodSandbox: ready, with an address from the CNI bridge network', async () => {
      const s = await node.cri.podSandboxStatus(pod);
      expect(s.status?.state).toBe(PodSandboxState.SANDBOX_READY);
      podIp = s.status?.network?.ip ?? '';
      expect(podIp.startsWith(node.subnet.replace(/\.0\/24$/, '.'))).toBe(true);
      for (const id of [web, writer]) {
        expect((await node.cri.containerStatus(id)).status?.state).toBe(
          ContainerState.CONTAINER_RUNNING,
        );
      }
    });

    it('an HTTP GET from the node namespace reaches the pod IP', async () => {
      expect(await node.netns.get(`http://${podIp}:8080/`)).toBe(`hello from web-${handler}\n`);
    });

    it('ExecSync: stdout, stderr and the exit code', async () => {
      const r = await node.cri.execSync(writer, ['sh', '-c', 'echo out; echo err >&2; exit 7']);
      expect(Buffer.from(r.stdout).toString()).toBe('out\n');
      expect(Buffer.from(r.stderr).toString()).toBe('err\n');
      expect(r.exitCode).toBe(7);
      const k = await node.cri.execSync(web, ['uname', '-r']);
      expect(k.exitCode).toBe(0);
      if (handler === 'kapsel')
        expect(Buffer.from(k.stdout).toString().trim()).toBe(guestRelease());
    });

    it('the container log is written where CRI asks, in its line format', async () => {
      const file = join(logDir(), 'writer.log');
      let lines: string[] = [];
      for (let i = 0; i < 100 && lines.length < 2; i++) {
        lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
        if (lines.length < 2) await sleep(200);
      }
      expect(lines.length).toBeGreaterThanOrEqual(2);
      for (const l of lines) expect(l).toMatch(CRI_LOG_LINE);
      expect(lines[0]).toMatch(/ stdout F line 0$/);
      expect(lines[1]).toMatch(/ stdout F line 1$/);
    });

    it('ContainerStats: a working set within the container memory limit', async () => {
      const s = (await node.cri.containerStats(web)).stats;
      expect(s?.attributes?.id).toBe(web);
      const ws = s?.memory?.workingSetBytes?.value ?? 0n;
      expect(ws).toBeGreaterThan(0n);
      expect(ws).toBeLessThanOrEqual(WEB_LIMIT);
      expect(s?.cpu?.usageCoreNanoSeconds?.value ?? 0n).toBeGreaterThan(0n);
      if (handler === 'kapsel') {
        // The limit is the guest cgroup's (v2), where the stats come from.
        const max = await node.cri.execSync(web, ['cat', '/sys/fs/cgroup/memory.max']);
        expect(Buffer.from(max.stdout).toString().trim()).toBe(String(WEB_LIMIT));
      }
    });

    /** Runs a container of `cmd` in the pod until it exited with `reason`; its last ContainerStatus. */
    const runToEnd = async (
      name: string,
      cmd: string[],
      reason: string,
      memoryLimitInBytes = 0n,
    ) => {
      const id = await node.cri.createContainer({
        podSandboxId: pod,
        sandboxConfig: sandboxConfig(),
        config: {
          metadata: { name },
          image: { image: SHIM_IMAGE },
          command: cmd,
          logPath: `${name}.log`,
          linux: { resources: { memoryLimitInBytes }, ...NAMESPACES },
        },
      });
      await node.cri.startContainer(id);
      let st = (await node.cri.containerStatus(id)).status;
      // The exit and the OOM event reach the CRI plugin separately: wait for both.
      for (
        let i = 0;
        i < 300 && (st?.state !== ContainerState.CONTAINER_EXITED || st.reason !== reason);
        i++
      ) {
        await sleep(100);
        st = (await node.cri.containerStatus(id)).status;
      }
      await node.cri.removeContainer(id);
      return st;
    };

    it('a container that runs to completion (an init container): EXITED, its code and log; the pod lives on', async () => {
      const st = await runToEnd('init', ['sh', '-c', 'echo init done; exit 3'], 'Error');
      expect(st?.state).toBe(ContainerState.CONTAINER_EXITED);
      expect(st?.exitCode).toBe(3);
      expect(readFileSync(join(logDir(), 'init.log'), 'utf8')).toMatch(/ stdout F init done\n$/);
      expect(await node.netns.get(`http://${podIp}:8080/`)).toBe(`hello from web-${handler}\n`);
    });

    it('an OOM kill: ContainerStatus reason OOMKilled, exit code 137', async () => {
      // dd holds its whole block in one buffer: 64 MiB against a 32 MiB limit.
      const st = await runToEnd(
        'oom',
        ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1'],
        'OOMKilled',
        32n << 20n,
      );
      expect(st?.state).toBe(ContainerState.CONTAINER_EXITED);
      expect(st?.exitCode).toBe(137);
      expect(st?.reason).toBe('OOMKilled');
    });

    it('the pod is one shim process (and for kapsel one QEMU)', () => {
      expect(shims()).toHaveLength(1);
      if (handler === 'kapsel') {
        expect(shims()[0]).toContain('containerd-shim-kapsel-v2');
        const qemu = processesMentioning(vmDir()).filter((p) => p.includes('qemu-system'));
        expect(qemu).toHaveLength(1);
      }
    });

    it("kubelet's teardown (StopContainer, StopPodSandbox, RemoveContainer, RemovePodSandbox) leaves nothing", async () => {
      // httpd ends on SIGTERM; the writer's shell (pid 1) ignores it: SIGKILL after 2 s.
      for (const id of [web, writer]) await node.cri.stopContainer(id, 2);
      for (const id of [web, writer]) {
        const st = (await node.cri.containerStatus(id)).status;
        expect(st?.state).toBe(ContainerState.CONTAINER_EXITED);
      }
      await node.cri.stopPodSandbox(pod);
      for (const id of [web, writer]) await node.cri.removeContainer(id);
      await node.cri.removePodSandbox(pod);
      const id = pod;
      pod = '';
      expect(await leftovers(id)).toEqual([]);
    });
  });

  it('kapsel: the pod VM dies (QEMU killed): its containers exit, the pod is not ready, teardown leaves nothing', async () => {
    const logDirectory = join(node.dir, 'pods', 'vm-dies');
    mkdirSync(logDirectory, { recursive: true });
    const sandboxConfig = {
      metadata: { name: 'vm-dies', uid: 'uid-vm-dies', namespace: 'default', attempt: 0 },
      hostname: 'vm-dies',
      logDirectory,
      linux: NAMESPACES,
    };
    const pod = await node.cri.runPodSandbox({ config: sandboxConfig, runtimeHandler: 'kapsel' });
    try {
      const app = await node.cri.createContainer({
        podSandboxId: pod,
        sandboxConfig,
        config: {
          metadata: { name: 'app' },
          image: { image: SHIM_IMAGE },
          command: ['sleep', '100000'],
          logPath: 'app.log',
          linux: NAMESPACES,
        },
      });
      await node.cri.startContainer(app);
      const qemu = processesMentioning(vmDirOfPod(podKey(node.containerd.address, CRI_NS, pod)))
        .filter((p) => p.includes('qemu-system'))
        .map((p) => Number(p.split(':')[0]));
      expect(qemu).toHaveLength(1);
      process.kill(qemu[0] ?? 0, 'SIGKILL');
      let st = (await node.cri.containerStatus(app)).status;
      let ready = true;
      for (let i = 0; i < 300; i++) {
        st = (await node.cri.containerStatus(app)).status;
        ready =
          (await node.cri.podSandboxStatus(pod)).status?.state === PodSandboxState.SANDBOX_READY;
        if (st?.state === ContainerState.CONTAINER_EXITED && !ready) break;
        await sleep(100);
      }
      expect(st?.state).toBe(ContainerState.CONTAINER_EXITED);
      expect(st?.exitCode).not.toBe(0);
      expect(ready).toBe(false);
      await node.cri.stopPodSandbox(pod);
      await node.cri.removeContainer(app);
      await node.cri.removePodSandbox(pod);
    } finally {
      await node.cri.stopPodSandbox(pod).catch(() => undefined);
      await node.cri.removePodSandbox(pod).catch(() => undefined);
    }
    expect(await leftovers(pod)).toEqual([]);
  });

  it.each(['runc', 'kapsel'])(
    "%s: the pod's sandbox process dies first: the pod is not ready, its container runs on until kubelet's teardown, which leaves nothing",
    async (handler) => {
      const name = `pause-dies-${handler}`;
      const logDirectory = join(node.dir, 'pods', name);
      mkdirSync(logDirectory, { recursive: true });
      const sandboxConfig = {
        metadata: { name, uid: `uid-${name}`, namespace: 'default', attempt: 0 },
        hostname: name,
        logDirectory,
        linux: NAMESPACES,
      };
      const pod = await node.cri.runPodSandbox({ config: sandboxConfig, runtimeHandler: handler });
      try {
        const app = await node.cri.createContainer({
          podSandboxId: pod,
          sandboxConfig,
          config: {
            metadata: { name: 'app' },
            image: { image: SHIM_IMAGE },
            command: ['sleep', '100000'],
            logPath: 'app.log',
            linux: NAMESPACES,
          },
        });
        await node.cri.startContainer(app);
        // The pause process killed: containerd's CRI plugin deletes the
        // sandbox's task at once, before the app container's.
        const k = await runCommand(CTR, [
          '-a',
          node.containerd.address,
          '-n',
          CRI_NS,
          'task',
          'kill',
          '-s',
          'SIGKILL',
          pod,
        ]);
        expect(k.stderr).toBe('');
        let ready = true;
        for (let i = 0; i < 300 && ready; i++) {
          await sleep(100);
          ready =
            (await node.cri.podSandboxStatus(pod)).status?.state === PodSandboxState.SANDBOX_READY;
        }
        expect(ready).toBe(false);
        expect((await node.cri.containerStatus(app)).status?.state).toBe(
          ContainerState.CONTAINER_RUNNING,
        );
        const e = await node.cri.execSync(app, ['echo', 'alive']);
        expect(Buffer.from(e.stdout).toString()).toBe('alive\n');
        await node.cri.stopContainer(app, 2);
        await node.cri.stopPodSandbox(pod);
        await node.cri.removeContainer(app);
        await node.cri.removePodSandbox(pod);
      } finally {
        await node.cri.stopPodSandbox(pod).catch(() => undefined);
        await node.cri.removePodSandbox(pod).catch(() => undefined);
      }
      expect(await leftovers(pod)).toEqual([]);
    },
  );
});
