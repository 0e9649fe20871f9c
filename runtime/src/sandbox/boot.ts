import type { Logger } from 'pino';
import { AgentClient } from './agent-client.js';
import { guestImage } from './guest-image.js';
import { SHARED_TAG } from './vm-dir.js';
import type { Child } from './vm/child.js';
import { Vm } from './vm/index.js';
import type { Machine, VmConfig } from './vm/config.js';
import { templateSettings } from './template/settings.js';
import { startFromTemplate } from './template/start.js';

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
}

/** KAPSEL_MACHINE: q35 or microvm (vm/config.ts Machine). */
function machineFromEnv(): { machine?: Machine } {
  const v = process.env['KAPSEL_MACHINE'];
  if (v === undefined || v === '') return {};
  if (v !== 'q35' && v !== 'microvm') {
    throw new Error(`KAPSEL_MACHINE: expected q35 or microvm, got ${JSON.stringify(v)}`);
  }
  return { machine: v };
}

/** KAPSEL_TCG_TB_MIB: TCG's translation buffer in MiB (vm/config.ts TCG_TB_MIB). */
function tcgTbFromEnv(): { tcgTbMiB?: number } {
  const v = process.env['KAPSEL_TCG_TB_MIB'];
  if (v === undefined || v === '') return {};
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`KAPSEL_TCG_TB_MIB: must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return { tcgTbMiB: n };
}

/**
 * KAPSEL_KERNEL_PARAMS: more guest kernel parameters, space-separated, for
 * debugging a guest from the command line as Kata's `kernel_params` does
 * (the init options of docs/light-sandboxes.md: kapsel.agent_flags=,
 * kapsel.agent_start=). qemu-args.ts refuses quotes.
 */
function kernelParamsFromEnv(): { kernelParams?: string[] } {
  const v = process.env['KAPSEL_KERNEL_PARAMS']?.trim() ?? '';
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
    const image = guestImage();
    const cfg: VmConfig = {
      stateDir: opts.stateDir,
      kernel: image.kernel,
      initrd: image.initrd,
      ...(image.image === undefined ? {} : { image: image.image }),
      ...tcgTbFromEnv(),
      ...machineFromEnv(),
      ...kernelParamsFromEnv(),
      memoryMiB: opts.memoryMiB ?? 1024,
      cpus: opts.cpus ?? 1,
      share: { dir: opts.shareDir, tag: SHARED_TAG },
    };
    const vmOpts = {
      ...(opts.adopt === undefined ? {} : { adopt: opts.adopt }),
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    };
    const templating = templateSettings();
    if (templating.enabled) {
      try {
        const { vm, agent } = await startFromTemplate(cfg, templating.dir, opts.log, vmOpts);
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
    await this.vm.shutdown(graceful ? 10_000 : 0);
  }
}
