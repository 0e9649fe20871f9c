import type { Logger } from 'pino';
import { Status } from '../../../proto/generated/github.com/containerd/containerd/api/types/task/task.js';
import type { TaskDefinition } from '../../../proto/generated/github.com/containerd/containerd/runtime/v2/task/shim.js';
import { agentCall } from '../sandbox/agent-client.js';
import type { ServiceImplementation } from '../ttrpc/server.js';
import { Code, TtrpcError } from '../ttrpc/status.js';
import { VERSION } from '../version.js';
import { metricsAny } from './metrics.js';
import type { ShimPod } from './pod.js';

/**
 * containerd's task service (runtime/v2/task/shim.proto) over ttrpc: each
 * handler checks, calls the pod, shapes the reply. `shutdown` is called once
 * the shim may go (no container left, or `now`).
 */
export function taskService(
  pod: ShimPod,
  shutdown: () => void,
  log: Logger,
): ServiceImplementation<typeof TaskDefinition> {
  const empty = Promise.resolve({});
  return {
    state(r) {
      const c = pod.container(r.id);
      const p = pod.process(r.id, r.execId);
      const status =
        r.execId === '' && c.paused
          ? Status.PAUSED
          : p.status === 'created'
            ? Status.CREATED
            : p.status === 'running'
              ? Status.RUNNING
              : Status.STOPPED;
      return Promise.resolve({
        id: r.id,
        bundle: c.bundle,
        pid: p.pid,
        status,
        stdin: p.io.stdin,
        stdout: p.io.stdout,
        stderr: p.io.stderr,
        terminal: p.io.terminal,
        exitStatus: p.exitStatus,
        exitedAt: p.exitedAt,
        execId: r.execId,
      });
    },
    async create(r) {
      log.info({ id: r.id, bundle: r.bundle }, 'create');
      return { pid: await pod.create(r) };
    },
    async start(r) {
      return { pid: await pod.start(r.id, r.execId) };
    },
    async delete(r) {
      const p = await pod.delete(r.id, r.execId);
      return { pid: p.pid, exitStatus: p.exitStatus, exitedAt: p.exitedAt };
    },
    async pids(r) {
      pod.container(r.id);
      const pids = await agentCall(pod.agent.listProcesses(r.id));
      return { processes: pids.map((pid) => ({ pid, info: undefined })) };
    },
    async pause(r) {
      await pod.pause(r.id);
      return {};
    },
    async resume(r) {
      await pod.resume(r.id);
      return {};
    },
    checkpoint() {
      return Promise.reject(
        new TtrpcError(
          Code.Unimplemented,
          'checkpoint: not supported by kapsel (the container runs in a VM; CRIU cannot dump it)',
        ),
      );
    },
    async kill(r) {
      await pod.kill(r.id, r.execId, r.signal, r.all);
      return {};
    },
    exec(r) {
      if (r.spec === undefined) {
        return Promise.reject(
          new TtrpcError(Code.InvalidArgument, `exec ${r.execId}: spec: missing`),
        );
      }
      // containerd marshals the OCI process as JSON (typeurl of specs.Process).
      pod.exec(
        r.id,
        r.execId,
        { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, terminal: r.terminal },
        Buffer.from(r.spec.value).toString('utf8'),
      );
      return empty;
    },
    resizePty(r) {
      pod.process(r.id, r.execId).resize(r.height, r.width);
      return empty;
    },
    closeIO(r) {
      if (r.stdin) pod.process(r.id, r.execId).closeStdin();
      return empty;
    },
    async update(r) {
      pod.container(r.id);
      // OCI linux.resources as JSON (typeurl of specs.LinuxResources).
      const resources =
        r.resources === undefined ? '{}' : Buffer.from(r.resources.value).toString();
      await agentCall(pod.agent.updateContainer(r.id, resources));
      return {};
    },
    async wait(r) {
      const p = pod.process(r.id, r.execId);
      await p.exited;
      return { exitStatus: p.exitStatus, exitedAt: p.exitedAt };
    },
    async stats(r) {
      pod.container(r.id);
      return { stats: metricsAny(await agentCall(pod.agent.statsContainer(r.id))) };
    },
    connect(r) {
      const taskPid = pod.containers.has(r.id) ? pod.pid : 0;
      return Promise.resolve({
        shimPid: process.pid,
        taskPid,
        version: VERSION,
      });
    },
    shutdown(r) {
      // runc's shim stays while it holds containers, unless told `now`.
      if (pod.containers.size > 0 && !r.now) return empty;
      shutdown();
      return empty;
    },
  };
}
