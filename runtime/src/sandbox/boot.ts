import type { Logger } from 'pino';
import { AgentClient } from './agent-client.js';
import { guestImage } from './guest-image.js';
import { SHARED_TAG } from './vm-dir.js';
import type { Child } from './vm/child.js';
import { Vm } from './vm/index.js';
import type { VmConfig } from './vm/config.js';
import type { LoadedSettings } from '../config/load.js';
import { loadedSettings } from '../config/settings.js';
import { startFromTemplate } from './template/start.js';

/** How long a cold-booted guest may take to power off after DestroySandbox. */
const POWEROFF_WAIT_MS = 10_000;
/**
 * The same for a guest restored from a template, which never powers off by
 * itself: booted with `initcall_debug`, its kernel's last line is
 * `nd_pmem namespace0.0: shutdown`. That callback (nd_pmem_shutdown,
 * drivers/nvdimm/pmem.c) flushes the region, and virtio-pmem's flush is a
 * request to QEMU the guest waits for without a timeout
 * (drivers/nvdimm/nd_virtio.c); a restored virtio-pmem device never
 * completes it (QEMU 7.2). The image is read-only: there is nothing to
 * flush. So a restored guest is quit once init says it is powering off
 * (POWERING_OFF): DestroySandbox has answered, the containers are gone,
 * and virtio-fs writes reached the host (no writeback cache).
 */
const RESTORED_POWEROFF_WAIT_MS = 1000;
/** init's line before it stops what is left and powers off (native/init/init.c shutdown_vm). */
const POWERING_OFF = /^kapsel-init: powering off/;

export interface SandboxOptions {
  stateDir: string;
  /** Host directory shared into the guest: the containers' rootfses and binds. */
  shareDir: string;
  memoryMiB?: number;
  cpus?: number;
  log: Logger;
  /** Aborts the boot: whatever was started stops. */
  signal?: AbortSignal;
  /** Supervision of QEMU and virtiofsd (supervisor.ts). */
  adopt?: (name: string, child: Child, rank?: number) => void;
  /** The configuration to boot with; default this process's (config/settings.ts). */
  settings?: LoadedSettings;
}

/** hypervisor.kernel_params as VmConfig.kernelParams (qemu-args.ts checks each). */
function kernelParams(line: string): { kernelParams?: string[] } {
  const v = line.trim();
  return v === '' ? {} : { kernelParams: v.split(/\s+/) };
}

/**
 * One VM with its agent connection: QEMU, virtiofsd and the single gRPC
 * connection over the virtio-serial port. The sandbox process (serve.ts)
 * holds one for the VM's lifetime; start() is where a sandbox boots.
 */
export class Sandbox {
  private constructor(
    readonly vm: Vm,
    readonly agent: AgentClient,
    private readonly log: Logger,
  ) {}

  static async start(opts: SandboxOptions): Promise<Sandbox> {
    const loaded = opts.settings ?? loadedSettings();
    const { hypervisor, factory } = loaded.settings;
    const image = guestImage(hypervisor, loaded.sources);
    const cfg: VmConfig = {
      stateDir: opts.stateDir,
      kernel: image.kernel,
      initrd: image.initrd,
      ...(image.image === undefined ? {} : { image: image.image }),
      tcgTbMiB: hypervisor.tcg_tb_mib,
      machine: hypervisor.machine_type,
      ...(hypervisor.accel === 'auto' ? {} : { accel: hypervisor.accel }),
      ...kernelParams(hypervisor.kernel_params),
      memoryMiB: opts.memoryMiB ?? 1024,
      cpus: opts.cpus ?? 1,
      share: { dir: opts.shareDir, tag: SHARED_TAG },
      sharedFs: hypervisor.shared_fs,
    };
    const vmOpts = {
      ...(opts.adopt === undefined ? {} : { adopt: opts.adopt }),
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    };
    if (factory.enable_template) {
      try {
        const { vm, agent } = await startFromTemplate(cfg, factory.template_path, opts.log, vmOpts);
        opts.log.debug({ timeline: vm.timeline.report() }, 'sandbox boot timeline');
        return new Sandbox(vm, agent, opts.log);
      } catch (err) {
        opts.signal?.throwIfAborted();
        opts.log.warn({ err }, 'starting from a VM template failed; booting the VM instead');
      }
    }
    const vm = await Vm.boot(cfg, opts.log, vmOpts);
    try {
      await vm.waitAgentReady(opts.signal);
      const agent = AgentClient.forSocket(vm.agentSocketPath);
      await agent.check();
      vm.timeline.mark('agentAnswered');
      opts.log.debug({ timeline: vm.timeline.report() }, 'sandbox boot timeline');
      return new Sandbox(vm, agent, opts.log);
    } catch (err) {
      await vm.shutdown(0);
      throw err;
    }
  }

  /**
   * Tears the VM down: asks the agent to stop (PID 1 then powers off), and
   * makes sure QEMU and virtiofsd are gone whatever the guest does. After a
   * fault (`graceful` false) the guest is not asked: QEMU quits at once.
   */
  async stop(graceful = true): Promise<void> {
    if (graceful) {
      try {
        await this.agent.destroySandbox(5000);
      } catch (err) {
        this.log.debug({ err }, 'DestroySandbox failed; stopping the VM anyway');
      }
    }
    this.agent.close();
    if (graceful && this.vm.config.template?.role === 'restore') {
      const signal = AbortSignal.timeout(RESTORED_POWEROFF_WAIT_MS);
      await Promise.race([
        this.vm.console.waitFor(POWERING_OFF, { includeTail: true, signal }).catch(() => undefined),
        this.vm.exited,
      ]);
      await this.vm.shutdown(0);
      return;
    }
    await this.vm.shutdown(graceful ? POWEROFF_WAIT_MS : 0);
  }
}
