import { join } from 'node:path';

export type Accel = 'kvm' | 'tcg';

/** A directory of the host shared into the guest over virtio-fs. */
export interface VmShare {
  /** Host directory virtiofsd serves. */
  dir: string;
  /** The name the guest mounts: `mount -t virtiofs <tag> <dir>`. */
  tag: string;
}

/** Everything the driver needs to start one guest. */
export interface VmConfig {
  /** Private directory of this VM: sockets, pidfile, console log. Must exist. */
  stateDir: string;
  kernel: string;
  initrd: string;
  memoryMiB: number;
  cpus: number;
  /** Forces the accelerator; otherwise KAPSEL_ACCEL, else the KVM probe decides. */
  accel?: Accel;
  share?: VmShare;
  /** Appended to the kernel command line, e.g. `kapsel.log=debug`. No spaces. */
  kernelParams?: readonly string[];
}

/** Fixed names of the files a VM keeps in its state directory. */
export interface VmPaths {
  console: string;
  qmp: string;
  agent: string;
  /** The chardev of the DNS relay port (network/dns-relay.ts). */
  dns: string;
  vfs: string;
  pidfile: string;
  virtiofsdPidfile: string;
}

export function vmPaths(stateDir: string): VmPaths {
  return {
    console: join(stateDir, 'console.log'),
    qmp: join(stateDir, 'qmp.sock'),
    agent: join(stateDir, 'agent.sock'),
    dns: join(stateDir, 'dns.sock'),
    vfs: join(stateDir, 'vfs.sock'),
    pidfile: join(stateDir, 'qemu.pid'),
    virtiofsdPidfile: join(stateDir, 'virtiofsd.pid'),
  };
}

/** Names the driver and the guest agree on. */
export const AGENT_PORT_ID = 'agentport';
export const AGENT_PORT_NAME = 'agent.channel.0';
/** The guest's kapsel-dns-relay finds its port by this name (native/dns/relay.c). */
export const DNS_PORT_ID = 'dnsport';
export const DNS_PORT_NAME = 'kapsel.dns.0';

export const QEMU_BINARY = 'qemu-system-x86_64';
export const VIRTIOFSD_BINARY = '/usr/lib/qemu/virtiofsd';
