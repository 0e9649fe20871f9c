import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { State } from '../../oci/spec.js';
import { RuntimeError } from './errors.js';

/** runc's rule for container ids. */
const ID_PATTERN = /^[\w+\-.]+$/;

/** What kapsel records about a container under --root. */
export interface ContainerRecord {
  id: string;
  bundle: string;
  rootfs: string;
  created: string;
  /** The host process that stands for the container (runc's init pid). */
  pid: number;
  status: 'creating' | 'created' | 'running' | 'stopped';
  annotations: Record<string, string>;
  /** Host processes of the sandbox, to clean up after a crash. */
  qemuPid?: number;
  virtiofsdPid?: number;
}

export function checkContainerId(id: string): void {
  if (!ID_PATTERN.test(id)) throw new RuntimeError(`invalid container id format: ${id}`);
}

export class StateStore {
  constructor(readonly root: string) {}

  dirOf(id: string): string {
    return join(this.root, id);
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
    await writeFile(`${file}.tmp`, JSON.stringify(record));
    await rename(`${file}.tmp`, file);
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

  async remove(id: string): Promise<void> {
    await rm(this.dirOf(id), { recursive: true, force: true });
  }
}

export function isAlive(pid: number | undefined): boolean {
  if (pid === undefined || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The OCI state runc prints, from our record and what is alive now. */
export function toOciState(r: ContainerRecord): State {
  const alive = isAlive(r.pid);
  return {
    ociVersion: '1.2.0',
    id: r.id,
    pid: alive ? r.pid : 0,
    status: alive ? r.status : 'stopped',
    bundle: r.bundle,
    rootfs: r.rootfs,
    created: r.created,
    owner: '',
    annotations: r.annotations,
  };
}
