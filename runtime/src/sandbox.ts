import type { Logger } from 'pino';
import type { Spec } from '../../oci/spec.js';
import type { Storage } from '../../proto/generated/agent.js';
import { AgentClient } from './agent/client.js';
import { guestImage } from './paths.js';
import { Vm } from './vm/index.js';

/** The virtio-fs tag under which a container's rootfs reaches the guest. */
const ROOTFS_TAG = 'kapsel-rootfs';
/** Where the agent mounts shared rootfses, per container. */
const GUEST_CONTAINERS_DIR = '/run/kapsel/containers';

export interface SandboxOptions {
  stateDir: string;
  /** Host directory shared into the guest: the container's rootfs. */
  rootfs: string;
  memoryMiB?: number;
  cpus?: number;
  log: Logger;
}

/**
 * One VM with its agent connection: QEMU, virtiofsd and the single gRPC
 * connection over the virtio-serial port. `kapsel run` holds one in-process
 * for the container's lifetime.
 */
export class Sandbox {
  private constructor(
    readonly vm: Vm,
    readonly agent: AgentClient,
    private readonly log: Logger,
  ) {}

  static async start(opts: SandboxOptions): Promise<Sandbox> {
    const image = guestImage();
    const vm = await Vm.boot(
      {
        stateDir: opts.stateDir,
        kernel: image.kernel,
        initrd: image.initrd,
        memoryMiB: opts.memoryMiB ?? 1024,
        cpus: opts.cpus ?? 1,
        share: { dir: opts.rootfs, tag: ROOTFS_TAG },
      },
      opts.log,
    );
    try {
      await vm.waitAgentReady();
      const agent = AgentClient.forSocket(vm.agentSocketPath);
      await agent.check();
      return new Sandbox(vm, agent, opts.log);
    } catch (err) {
      await vm.shutdown(0);
      throw err;
    }
  }

  /** The spec as the agent must see it, and the storage that backs its rootfs. */
  static guestSpec(containerId: string, spec: Spec): { spec: Spec; storages: Storage[] } {
    const mountPoint = `${GUEST_CONTAINERS_DIR}/${containerId}/rootfs`;
    return {
      spec: { ...spec, root: { ...spec.root, path: mountPoint } },
      storages: [{ driver: 'virtiofs', source: ROOTFS_TAG, mountPoint, options: [] }],
    };
  }

  /**
   * Tears the VM down: asks the agent to stop (PID 1 then powers off), and
   * makes sure QEMU and virtiofsd are gone whatever the guest does.
   */
  async stop(): Promise<void> {
    try {
      await this.agent.destroySandbox();
    } catch (err) {
      this.log.debug({ err }, 'DestroySandbox failed; stopping the VM anyway');
    }
    this.agent.close();
    await this.vm.shutdown(10_000);
  }
}
