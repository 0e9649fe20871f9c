import { AGENT_PORT_NAME, DNS_PORT_NAME } from '../../../../proto/contract.js';

export type Accel = 'kvm' | 'tcg';

/**
 * `q35` (PCIe, SeaBIOS, ACPI) or `microvm` with a PCIe host bridge
 * (`microvm,pcie=on`: qboot firmware, no legacy devices, the same
 * virtio-pci devices and root ports, so virtio-pmem and NIC hot-plug work
 * as on q35). hypervisor.machine_type picks one (docs/configuration.md).
 */
export type Machine = 'q35' | 'microvm';

export const DEFAULT_MACHINE: Machine = 'q35';

/**
 * How the host's directory reaches the guest (Kata's `shared_fs`):
 * - `virtio-fs`: vhost-user-fs-pci served by virtiofsd. The guest's RAM
 *   must be a shared mapping virtiofsd maps too, so a clone of a template
 *   holds its own copy of the template's RAM.
 * - `virtio-9p`: virtio-9p-pci served by QEMU itself (`-fsdev local`).
 *   Nothing outside QEMU maps the RAM, so a clone maps the template's RAM
 *   file privately: pages it never writes stay the template's, one copy in
 *   the host's page cache for every clone (docs/light-sandboxes.md).
 */
export type SharedFs = 'virtio-fs' | 'virtio-9p';

export const DEFAULT_SHARED_FS: SharedFs = 'virtio-fs';

/** The share device of a VM of `cfg`'s shape: its sharedFs, or the default. */
export function sharedFsOf(cfg: Pick<VmConfig, 'sharedFs'>): SharedFs {
  return cfg.sharedFs ?? DEFAULT_SHARED_FS;
}

/** A directory of the host shared into the guest (VmConfig.sharedFs says how). */
export interface VmShare {
  /** Host directory virtiofsd (or QEMU, for 9p) serves. */
  dir: string;
  /** The name the guest mounts: `mount -t virtiofs <tag> <dir>`, or 9p's mount_tag. */
  tag: string;
}

/** A file mapped into the guest read-only, whose pages all VMs share. */
export interface VmImage {
  path: string;
  /** Bytes; a multiple of 2 MiB (virtio-pmem maps whole huge pages). */
  sizeBytes: number;
}

/** The guest's device for VmConfig.image: the first (only) pmem namespace. */
export const IMAGE_GUEST_DEVICE = '/dev/pmem0';

/** Everything the driver needs to start one guest. */
export interface VmConfig {
  /** Private directory of this VM (its files: ../vm-dir.ts). Must exist. */
  stateDir: string;
  kernel: string;
  initrd: string;
  memoryMiB: number;
  cpus: number;
  /** Forces the accelerator (hypervisor.accel); otherwise the KVM probe decides. */
  accel?: Accel;
  share?: VmShare;
  /**
   * The share's device; default DEFAULT_SHARED_FS. Part of the VM's shape
   * even without a share: a template for 9p clones has no balloon device
   * (qemu-args.ts says why).
   */
  sharedFs?: SharedFs;
  /**
   * A read-only guest image (rootfs/build.sh's image.erofs) QEMU maps as a
   * virtio-pmem device; the initrd's init mounts it (kapsel.image=).
   */
  image?: VmImage;
  /** QEMU machine type; default DEFAULT_MACHINE. */
  machine?: Machine;
  /**
   * TCG's translation buffer in MiB (`-accel tcg,tb-size=`); ignored under
   * KVM. Default TCG_TB_MIB.
   */
  tcgTbMiB?: number;
  /** Appended to the kernel command line, e.g. `kapsel.log=debug`. No spaces. */
  kernelParams?: readonly string[];
  /**
   * VM templating (../template/). Both roles have the same devices: RAM in
   * a file (`ramFile`) and an empty root port for the share (SHARE_PORT_ID),
   * but no share device: QEMU 7.2 refuses to migrate a vhost-user-fs device,
   * and a mounted 9p one. `save` boots the template (give no share) with
   * its RAM file shared, so the file holds the guest's RAM; `restore` starts
   * paused on `-incoming defer`, loads `stateFile` (the device state: the
   * RAM is skipped, x-ignore-shared), then hot-plugs the share. A virtio-fs
   * restore maps a copy of the template's RAM file shared; a 9p restore
   * maps the template's file itself, privately (`private: true`).
   */
  template?:
    | { role: 'save'; ramFile: string }
    | { role: 'restore'; stateFile: string; ramFile: string; private?: boolean };
}

/** QEMU's id of a 9p share's backend (`-fsdev`), which its device names. */
export const FSDEV_ID = 'kfs';

/** The root port a templated VM's share device is hot-plugged into. */
export const SHARE_PORT_ID = 'kapsel-fsport';

/** QEMU's id of the agent port, which its VSERPORT_CHANGE events carry. */
export const AGENT_PORT_ID = 'agentport';
/** The port's name, which the guest agent looks for (shared with it). */
export { AGENT_PORT_NAME };
/** QEMU's id of the DNS relay port (network/dns-relay.ts). */
export const DNS_PORT_ID = 'dnsport';
/** The port's name, which the guest's kapsel-dns-relay looks for (shared with it). */
export { DNS_PORT_NAME };

/**
 * QEMU 7.2's default translation buffer is 1 GiB (tcg/region.c,
 * DEFAULT_CODE_GEN_BUFFER_SIZE), and a busy guest fills it: 125 MB of an idle
 * pod's host memory was translated code. What a kapsel guest (kernel, Node,
 * a container) needs is measured in docs/light-sandboxes.md.
 */
export const TCG_TB_MIB = 64;

export const QEMU_BINARY = 'qemu-system-x86_64';
export const VIRTIOFSD_BINARY = '/usr/lib/qemu/virtiofsd';
