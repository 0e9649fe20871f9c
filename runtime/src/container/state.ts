import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isValidContainerId } from '../../../proto/contract.js';
import { OCI_VERSION, type State } from '../../../oci/spec.js';
import { VM_DIR_NAME, vmDirOf } from '../sandbox/vm-dir.js';
import { writeFileAtomic } from '../sys/atomic-file.js';
import { RuntimeError } from '../sys/errors.js';
import { isAlive } from '../sys/pids.js';
import type { HostCgroup } from '../sandbox/host-cgroup/apply.js';
import type { SharedFs } from '../sandbox/vm/config.js';
import type { Status } from './lifecycle.js';
import { mkdirAll } from '../../../oci/fs/mkdir-all.js';

/** Where runc keeps state by default; ours, as DESIGN says. */
export const DEFAULT_ROOT = '/run/kapsel';

/** A host bind mount kapsel made into a sandbox's shared directory. */
export interface HostMount {
  /** Where it is mounted on the host (inside the shared directory). */
  target: string;
}

/** What kapsel records about a container under --root, in `<root>/<id>/state.json`. */
export interface ContainerRecord {
  id: string;
  bundle: string;
  rootfs: string;
  created: string;
  /**
   * The host process that stands for the container (runc's init pid): the
   * shim, or the foreground `kapsel run` itself.
   */
  pid: number;
  /** Start time of `pid` (/proc/PID/stat field 22), so a reused pid is not ours. */
  pidStart?: string;
  status: Status;
  annotations: Record<string, string>;
  /** The sandbox (VM) the container lives in; its own id for a lone container. */
  sandboxId: string;
  /** The sandbox's VM directory (sandbox/vm-dir.ts): monitor.sock, qmp.sock, shared/. */
  vmDir: string;
  /** Host mounts made for this container, unmounted on delete. */
  mounts: HostMount[];
  /** Its sandbox's host cgroup (at the sandbox container's cgroupsPath), removed with the sandbox. */
  hostCgroup?: HostCgroup;
  /**
   * How its sandbox's VM shares files (hypervisor.shared_fs when the
   * sandbox booted; a pod's later containers take the sandbox's). Absent
   * in records written before it existed: virtio-fs.
   */
  sharedFs?: SharedFs;
  /** Why the container stopped when it was not its own exit (the VM died). */
  stopReason?: string;
  /** The `kapsel create` making it, while "creating": if it dies, nobody finishes the job. */
  creator?: PidRef;
  /** The sandbox process of its VM (sandbox/serve.ts): with it gone the container is too. */
  sandbox?: PidRef;
  /** While paused: the status resume returns to (runc pauses created containers too). */
  pausedFrom?: 'created' | 'running';
}

/** A process a record names, with its start time so that a reused pid is not taken for it. */
export interface PidRef {
  pid: number;
  start?: string;
}

/** Names under --root that are kapsel's own, never a container's. */
const RESERVED_IDS: ReadonlySet<string> = new Set([VM_DIR_NAME]);

/**
 * runc's id rule (proto/contract.ts), and none of the names kapsel keeps
 * its own files under --root with.
 */
export function checkContainerId(id: string): void {
  if (!isValidContainerId(id)) throw new RuntimeError(`invalid container id format: ${id}`);
  if (RESERVED_IDS.has(id)) {
    throw new RuntimeError(`invalid container id: ${id} names kapsel's own files under --root`);
  }
}

export class StateStore {
  constructor(readonly root: string) {}

  dirOf(id: string): string {
    return join(this.root, id);
  }

  vmDirOf(sandboxId: string): string {
    return vmDirOf(this.root, sandboxId);
  }

  /**
   * Makes --root if missing, as runc does in every verb that loads its
   * factory (libcontainer.New: os.MkdirAll(root)); a root that cannot be
   * made fails with `mkdir <path>: <errno text>`, runc's own words.
   */
  async ensureRoot(): Promise<void> {
    await mkdirAll(this.root, 0o711);
  }

  /** Claims the id; fails as runc does when it is taken. */
  async create(record: ContainerRecord): Promise<string> {
    checkContainerId(record.id);
    await this.ensureRoot();
    const dir = this.dirOf(record.id);
    try {
      await mkdir(dir, { mode: 0o711 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new RuntimeError(`container with id exists: ${record.id}`);
      }
      throw err;
    }
    await this.save(record);
    return dir;
  }

  async save(record: ContainerRecord): Promise<void> {
    await writeFileAtomic(join(this.dirOf(record.id), 'state.json'), JSON.stringify(record));
  }

  async load(id: string): Promise<ContainerRecord> {
    checkContainerId(id);
    try {
      return JSON.parse(
        await readFile(join(this.dirOf(id), 'state.json'), 'utf8'),
      ) as ContainerRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new RuntimeError('container does not exist');
      }
      throw err;
    }
  }

  /** Loads, changes and saves a record; a no-op when it is gone. */
  async update(id: string, change: (r: ContainerRecord) => void): Promise<void> {
    const r = await this.load(id).catch(() => undefined);
    if (r === undefined) return;
    change(r);
    await this.save(r);
  }

  /** Ids of every container under the root, sorted. */
  async ids(): Promise<string[]> {
    const entries = await readdir(this.root, { withFileTypes: true }).catch(() => []);
    return entries
      .filter((e) => e.isDirectory() && !RESERVED_IDS.has(e.name) && isValidContainerId(e.name))
      .map((e) => e.name)
      .sort();
  }

  /** Ids of the containers living in sandbox `sandboxId`. */
  async idsInSandbox(sandboxId: string): Promise<string[]> {
    const ids = [];
    for (const id of await this.ids()) {
      const r = await this.load(id).catch(() => undefined);
      if (r?.sandboxId === sandboxId) ids.push(id);
    }
    return ids;
  }

  async remove(id: string): Promise<void> {
    await rm(this.dirOf(id), { recursive: true, force: true });
  }
}

/**
 * The status as it is now: a record says running only while its process
 * and its sandbox process live, and creating only while its creator does.
 */
export function currentStatus(r: ContainerRecord): Status {
  if (r.status === 'stopped' || lostReason(r) !== undefined) return 'stopped';
  if (r.status === 'creating') return r.status;
  return isAlive(r.pid, r.pidStart) ? r.status : 'stopped';
}

/**
 * Why a container the record calls alive is stopped after all: a process
 * it depends on is gone without having recorded a reason (SIGKILLed).
 * Undefined while nothing is missing.
 */
export function lostReason(r: ContainerRecord): string | undefined {
  if (r.status === 'stopped') return undefined;
  if (r.status === 'creating') {
    return r.creator !== undefined && !isAlive(r.creator.pid, r.creator.start)
      ? `its creator (pid ${r.creator.pid}) died before the container was created`
      : undefined;
  }
  if (r.sandbox !== undefined && !isAlive(r.sandbox.pid, r.sandbox.start)) {
    return `its sandbox process (pid ${r.sandbox.pid}) is gone without recording why (it was killed)`;
  }
  return undefined;
}

/** The OCI state runc prints, from our record and what is alive now. */
export function toOciState(r: ContainerRecord): State {
  const status = currentStatus(r);
  const annotations = { ...r.annotations };
  const reason = r.stopReason ?? lostReason(r);
  if (reason !== undefined && status === 'stopped') {
    annotations['io.kapsel.stop-reason'] = reason;
  }
  return {
    ociVersion: OCI_VERSION,
    id: r.id,
    pid: status === 'stopped' ? 0 : r.pid,
    status,
    bundle: r.bundle,
    rootfs: r.rootfs,
    created: r.created,
    owner: '',
    annotations,
  };
}
