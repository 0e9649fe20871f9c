import { status } from '@grpc/grpc-js';
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Spec } from '../../../oci/spec.js';
import { enterNetnsArgs, hostNetnsOf } from '../sandbox/network/netns.js';
import { scrubNamespace } from '../sandbox/network/tcfilter.js';
import { removeHostCgroup } from '../sandbox/host-cgroup/apply.js';
import { stopSandbox } from '../sandbox/process.js';
import { isAlive, killQuietly } from '../sys/pids.js';
import { readSpec } from './bundle.js';
import { releaseHostMounts } from './guest-spec.js';
import { runHooks } from './hooks.js';
import { agentOf } from './open.js';
import { toOciState, type ContainerRecord, type StateStore } from './state.js';

/** The deadline of each agent call of `delete --force`: it ends in seconds whatever the VM does. */
export const FORCE_CALL_MS = 2000;

/**
 * Removes a container for good: from the guest (if its VM still runs), its
 * shim, its host mounts and its state; the sandbox goes with its last
 * container. Poststop hooks run last, as runc runs them on destroy.
 */
export async function destroyContainer(
  store: StateStore,
  r: ContainerRecord,
  log: Logger,
  force = false,
  knownHung = false,
): Promise<void> {
  const agent = agentOf(r);
  // A sandbox process that lets a call run out its deadline is hung: with
  // --force it is killed at once rather than waited for.
  let hung = knownHung;
  try {
    if (!hung) {
      await agent.removeContainer(r.id, force ? FORCE_CALL_MS : undefined).catch((err: unknown) => {
        hung = (err as { code?: unknown }).code === status.DEADLINE_EXCEEDED;
        log.debug({ err }, 'RemoveContainer failed (the VM may be gone)');
      });
    }
  } finally {
    agent.close();
  }
  if (r.pid !== process.pid && isAlive(r.pid, r.pidStart)) killQuietly(r.pid);
  await releaseHostMounts(r.mounts);
  await store.remove(r.id);
  const spec = await readSpec(r.bundle);
  if ((await store.idsInSandbox(r.sandboxId)).length === 0) {
    await stopSandbox(r.vmDir, log, force, force && hung);
    if (r.hostCgroup !== undefined) {
      await removeHostCgroup(r.hostCgroup).catch((err: unknown) => {
        log.warn({ err }, 'removing the host cgroup failed');
      });
    }
    // A killed sandbox process leaves its taps in an engine's namespace.
    const netns = spec === undefined ? undefined : netnsPathOf(spec);
    if (netns !== undefined && existsSync(netns)) {
      await scrubNamespace(enterNetnsArgs({ kind: 'path', path: netns })).catch((err: unknown) => {
        log.warn({ err, netns }, 'removing taps from the network namespace failed');
      });
    }
  }
  await runHooks(spec?.hooks, 'poststop', { ...toOciState(r), status: 'stopped', pid: 0 });
}

function netnsPathOf(spec: Spec): string | undefined {
  try {
    const ns = hostNetnsOf(spec);
    return ns.kind === 'path' ? ns.path : undefined;
  } catch {
    return undefined;
  }
}
