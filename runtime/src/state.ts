import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { State } from '../../oci/spec.js';
import { RuntimeError } from './errors.js';
import type { Status } from './lifecycle.js';

/** runc's rule for container ids. */
const ID_PATTERN = /^[\w+\-.]+$/;

/** A host bind mount kapsel made into a sandbox's shared directory. */
export interface HostMount {
  /** Where it is mounted on the host (inside the shared directory). */
  target: string;
}

/** What kapsel records about a container under --root. */
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
  /** Directory of the sandbox monitor: monitor.sock, qmp.sock, shared/. */
  vmDir: string;
  /** Host mounts made for this container, unmounted on delete. */
  mounts: HostMount[];
  /** Why the container stopped when it was not its own exit (the VM died). */
  stopReason?: string;
  /** While paused: the status resume returns to (runc pauses created containers too). */
  pausedFrom?: 'created' | 'running';
  /** Host processes of the sandbox, to clean up after a crash. */
  monitorPid?: number;
  qemuPid?: number;
  virtiofsdPid?: number;
}

export function checkContainerId(id: string): void {
  if (!ID_PATTERN.test(id)) throw new RuntimeError(`invalid container id format: ${id}`);
}

/** Directory under --root that holds the sandboxes' monitors (not a container). */
export const VM_DIR_NAME = '.vm';

/**
 * A sandbox's monitor directory. Named by a short hash of the sandbox id:
 * it holds unix sockets (QMP, virtiofsd, the monitor's), whose paths the
 * kernel caps at 108 bytes, and engines pass 64-hex ids under long roots.
 */
export function vmDirOf(root: string, sandboxId: string): string {
  return join(root, VM_DIR_NAME, createHash('sha256').update(sandboxId).digest('hex').slice(0, 12));
}

export class StateStore {
  constructor(readonly root: string) {}

  dirOf(id: string): string {
    return join(this.root, id);
  }

  vmDirOf(sandboxId: string): string {
    return vmDirOf(this.root, sandboxId);
  }

  /** Claims the id; fails as runc does when it is taken. */
  async create(record: ContainerRecord): Promise<string> {
    checkContainerId(record.id);
    await mkdir(this.root, { recursive: true, mode: 0o711 });
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
    const file = join(this.dirOf(record.id), 'state.json');
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(record));
    await rename(tmp, file);
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
      .filter((e) => e.isDirectory() && e.name !== VM_DIR_NAME && ID_PATTERN.test(e.name))
      .map((e) => e.name)
      .sort();
  }

  async remove(id: string): Promise<void> {
    await rm(this.dirOf(id), { recursive: true, force: true });
  }
}

/** Field 22 of /proc/PID/stat: the start time, which tells pid reuse apart. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may hold spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined; // exited, not yet reaped
    return fields[19];
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number | undefined, start?: string): boolean {
  if (pid === undefined || pid <= 0) return false;
  const now = processStart(pid);
  if (now === undefined) return false;
  return start === undefined || start === now;
}

/** The status as it is now: a record says running only while its process lives. */
export function currentStatus(r: ContainerRecord): Status {
  if (r.status === 'stopped' || r.status === 'creating') return r.status;
  return isAlive(r.pid, r.pidStart) ? r.status : 'stopped';
}

/** The OCI state runc prints, from our record and what is alive now. */
export function toOciState(r: ContainerRecord): State {
  const status = currentStatus(r);
  const annotations = { ...r.annotations };
  if (r.stopReason !== undefined && status === 'stopped') {
    annotations['io.kapsel.stop-reason'] = r.stopReason;
  }
  return {
    ociVersion: '1.2.0',
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
