import type { Logger } from 'pino';
import type { Storage } from '../../proto/generated/agent.js';
import { Container } from './container.js';
import { alreadyExists, invalidArgument, notFound } from './errors.js';
import type { Native, ProcessExit } from './native/types.js';
import { parseSpec, toSpawnRequest } from './spec.js';
import { mountStorages, unmountAll } from './storage.js';

/** runc's rule for container ids. */
const ID_PATTERN = /^[\w+\-.]+$/;

/** The containers of this guest, and everything done to them. */
export class Sandbox {
  private readonly containers = new Map<string, Container>();
  /** Ids being created, so a second create of the same id is refused early. */
  private readonly creating = new Set<string>();

  constructor(
    private readonly native: Native,
    private readonly log: Logger,
  ) {}

  async createContainer(id: string, specJson: string, storages: readonly Storage[]): Promise<void> {
    checkId(id);
    if (this.containers.has(id) || this.creating.has(id)) {
      throw alreadyExists(`container ${id} already exists`);
    }
    this.creating.add(id);
    try {
      const request = toSpawnRequest(parseSpec(specJson));
      const mounted = await mountStorages(this.native, storages);
      try {
        const init = await this.native.spawn(request);
        this.containers.set(id, new Container(id, init, mounted, this.log));
        this.log.info({ container: id, pid: init.pid }, 'container created');
      } catch (err) {
        await unmountAll(this.native, mounted);
        throw err;
      }
    } finally {
      this.creating.delete(id);
    }
  }

  get(id: string): Container {
    const c = this.containers.get(id);
    if (c === undefined) throw notFound(`container ${id} does not exist`);
    return c;
  }

  async startContainer(id: string): Promise<void> {
    await this.get(id).start();
    this.log.info({ container: id }, 'container started');
  }

  waitProcess(id: string, execId: string): Promise<ProcessExit> {
    checkExecId(execId);
    return this.get(id).wait();
  }

  signalProcess(id: string, execId: string, signal: number): void {
    checkExecId(execId);
    if (!Number.isInteger(signal) || signal < 0 || signal > 64) {
      throw invalidArgument(`signal: ${signal} is not a signal number`);
    }
    this.get(id).signal(signal);
  }

  async removeContainer(id: string): Promise<void> {
    const c = this.get(id);
    this.containers.delete(id);
    await c.kill();
    await unmountAll(this.native, c.storageMounts);
    this.log.info({ container: id }, 'container removed');
  }

  async destroy(): Promise<void> {
    for (const id of [...this.containers.keys()]) {
      await this.removeContainer(id).catch((err: unknown) => {
        this.log.error({ err, container: id }, 'remove during sandbox destroy failed');
      });
    }
  }
}

function checkId(id: string): void {
  if (!ID_PATTERN.test(id)) throw invalidArgument(`container_id: invalid id ${JSON.stringify(id)}`);
}

function checkExecId(execId: string): void {
  if (execId !== '') throw invalidArgument('exec_id: exec processes are not supported yet');
}
