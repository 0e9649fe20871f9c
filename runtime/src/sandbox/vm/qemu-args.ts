import { HOTPLUG_PORTS, hotplugPortDevices } from '../network/hotplug.js';
import { vmDirLayout } from '../vm-dir.js';
import {
  IMAGE_GUEST_DEVICE,
  AGENT_PORT_ID,
  AGENT_PORT_NAME,
  DNS_PORT_ID,
  DNS_PORT_NAME,
  TCG_TB_MIB,
  DEFAULT_MACHINE,
  FSDEV_ID,
  SHARE_PORT_ID,
  sharedFsOf,
  type Accel,
  type Machine,
  type SharedFs,
  type VmConfig,
} from './config.js';

/**
 * Kernel command line every guest gets. `panic=-1` reboots at once on a panic
 * and `-no-reboot` turns that reboot into QEMU exiting, so a dead guest shows
 * up as an exit we watch instead of a hung VM. `swiotlb=noforce`: the 6.1
 * kernel sets up a 64 MiB bounce buffer when the guest's possible memory
 * reaches past 4 GiB (arch/x86/kernel/pci-dma.c; the hot-plug range that
 * maxmem adds does), zeroing all of it at boot (memblock_alloc), so every
 * guest held 64 MiB of host RAM it never uses: virtio devices without
 * VIRTIO_F_ACCESS_PLATFORM do not go through the DMA API, and there is no
 * other device (kernel-parameters.txt: swiotlb=noforce, never bounce).
 * `initcall_blacklist=tracer_init_tracefs`: 6.1 makes tracefs's files for
 * every trace event at boot (kernel/trace/trace.c tracer_init_tracefs,
 * an fs_initcall; eventfs made them lazy only in 6.6), ~10,000 dentries and
 * inodes pinned for the guest's life: 8.6 MB of every clone's copied RAM
 * (docs/light-sandboxes.md, third round). Skipping that initcall leaves
 * tracing itself in the kernel but without its file interface, which
 * nothing in a kapsel guest mounts.
 */
export const BASE_KERNEL_PARAMS: readonly string[] = [
  'console=ttyS0',
  'quiet',
  'panic=-1',
  'swiotlb=noforce',
  'initcall_blacklist=tracer_init_tracefs',
];

/**
 * `-M` for a machine type. The RAM backend goes in as `memory-backend=`
 * (QEMU 5.0+) rather than through `-numa node,memdev=`: microvm has no NUMA.
 */
function machineArg(machine: Machine, sharedRam: boolean): string {
  const opts = machine === 'microvm' ? ['microvm', 'pcie=on', 'rtc=on'] : ['q35'];
  if (sharedRam) opts.push('memory-backend=mem');
  return opts.join(',');
}

/** QemuOpts values (`path=...`) end at a comma; a literal comma is written twice. */
export function qemuOptValue(value: string): string {
  return value.replaceAll(',', ',,');
}

export function kernelCommandLine(params: readonly string[] = []): string {
  for (const p of params) {
    if (p === '' || /[\s"]/.test(p)) {
      throw new Error(`kernel parameter ${JSON.stringify(p)} is empty or holds a space or quote`);
    }
  }
  return [...BASE_KERNEL_PARAMS, ...params].join(' ');
}

/**
 * QEMU's argv (without the binary) for one guest. Pure: the caller decides the
 * accelerator (see kvm.ts) and creates the state directory.
 *
 * QEMU starts paused (`-S`): the driver connects QMP and subscribes to events
 * before `cont`, so no VSERPORT_CHANGE can fire before anyone listens.
 * The serial console goes to QEMU's stdout, which the driver reads: nothing the
 * guest prints before the driver is ready is lost, as it would be with a
 * socket chardev nobody has connected to yet.
 */
export function qemuArgs(cfg: VmConfig, accel: Accel): string[] {
  if (!Number.isInteger(cfg.memoryMiB) || cfg.memoryMiB < 64) {
    throw new Error(`memoryMiB must be an integer >= 64, got ${cfg.memoryMiB}`);
  }
  if (!Number.isInteger(cfg.cpus) || cfg.cpus < 1) {
    throw new Error(`cpus must be an integer >= 1, got ${cfg.cpus}`);
  }
  const p = vmDirLayout(cfg.stateDir);
  const image = cfg.image;
  const templated = cfg.template !== undefined;
  const sharedFs = sharedFsOf(cfg);
  // A 9p clone's RAM is a private mapping of the template's file (below).
  const cowClones = templated && sharedFs === 'virtio-9p';
  const imageMiB = image === undefined ? 0 : Math.ceil(image.sizeBytes / 2 ** 20);
  if (image !== undefined && (imageMiB % 2 !== 0 || image.sizeBytes % 2 ** 20 !== 0)) {
    throw new Error(
      `guest image ${image.path}: size ${image.sizeBytes} is not a multiple of 2 MiB`,
    );
  }
  const kernelParams = [
    ...(image === undefined ? [] : [`kapsel.image=${IMAGE_GUEST_DEVICE}`]),
    ...(cfg.kernelParams ?? []),
  ];
  const args: string[] = [
    '-name',
    'kapsel',
    '-M',
    machineArg(
      cfg.machine ?? DEFAULT_MACHINE,
      (cfg.share !== undefined && sharedFs === 'virtio-fs') || templated,
    ),
    // Under TCG the default (one host thread per vCPU when cpus > 1) was as
    // fast as thread=single here. tb-size made no measurable difference to
    // boot time, but its 1 GiB default is host memory once filled: sized
    // down (config.ts, TCG_TB_MIB).
    '-accel',
    accel === 'tcg' ? `tcg,tb-size=${cfg.tcgTbMiB ?? TCG_TB_MIB}` : accel,
    '-cpu',
    accel === 'kvm' ? 'host' : 'max',
    '-m',
    // virtio-pmem sits in the device-memory region, which maxmem sizes.
    image === undefined
      ? `${cfg.memoryMiB}`
      : `${cfg.memoryMiB}M,maxmem=${cfg.memoryMiB + imageMiB}M`,
    '-smp',
    `${cfg.cpus}`,
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-no-reboot',
    '-S',
    '-pidfile',
    p.pidfile,
    '-kernel',
    cfg.kernel,
    '-initrd',
    cfg.initrd,
    '-append',
    kernelCommandLine(kernelParams),
    '-chardev',
    'stdio,id=console,signal=off',
    '-serial',
    'chardev:console',
    '-qmp',
    `unix:${qemuOptValue(p.qmp)},server=on,wait=off`,
    '-device',
    'virtio-serial-pci,id=vser0',
    '-chardev',
    `socket,id=agent,path=${qemuOptValue(p.agent)},server=on,wait=off`,
    '-device',
    `virtserialport,bus=vser0.0,chardev=agent,name=${AGENT_PORT_NAME},id=${AGENT_PORT_ID}`,
    // DNS queries of the guest to the host's resolver (network/dns-relay.ts):
    // a port of its own, so they never queue behind the agent's traffic.
    '-chardev',
    `socket,id=dns,path=${qemuOptValue(p.dns)},server=on,wait=off`,
    '-device',
    `virtserialport,bus=vser0.0,chardev=dns,name=${DNS_PORT_NAME},id=${DNS_PORT_ID}`,
    // Free page reporting: pages the guest frees (in 2 MiB blocks) are
    // reported and QEMU discards them, so an idle guest's host memory shrinks
    // back to what it uses (the guest loads virtio_balloon; PAGE_REPORTING=y).
    // Not where clones map the template's RAM file privately: QEMU 7.2
    // discards file-backed RAM by punching a hole in the file
    // (ram_block_discard_range, softmmu/physmem.c), which would zero those
    // pages of the template under every other clone, and a guest can send
    // balloon requests unasked.
    ...(cowClones ? [] : ['-device', 'virtio-balloon-pci,id=balloon0,free-page-reporting=on']),
    // Empty, for the NICs of the container's network (network/hotplug.ts).
    ...hotplugPortDevices().flatMap((d) => ['-device', d]),
  ];
  if (image !== undefined) {
    args.push(
      // Its own backend, apart from the RAM (memfd, shared with virtiofsd):
      // a private read-only mapping of the file, so every QEMU maps the same
      // page-cache pages and no guest can write to them.
      '-object',
      `memory-backend-file,id=gimage,mem-path=${qemuOptValue(image.path)},size=${imageMiB}M,share=off,readonly=on`,
      '-device',
      'virtio-pmem-pci,memdev=gimage,id=gimage0',
    );
  }
  if (cfg.share) {
    checkShareTag(cfg.share.tag, sharedFs);
  }
  if (cfg.template !== undefined) {
    const t = cfg.template;
    // Shared, so the template's file holds its RAM and a virtio-fs clone
    // can hand its copy to virtiofsd; a 9p clone maps the template's file
    // itself privately (copy-on-write).
    const share = t.role === 'restore' && t.private === true ? 'off' : 'on';
    if (share === 'off' && !cowClones) {
      throw new Error('a private template RAM mapping needs sharedFs virtio-9p');
    }
    args.push(
      '-object',
      `memory-backend-file,id=mem,size=${cfg.memoryMiB}M,mem-path=${qemuOptValue(t.ramFile)},share=${share}`,
      '-device',
      `pcie-root-port,id=${SHARE_PORT_ID},bus=pcie.0,chassis=${HOTPLUG_PORTS + 1}`,
    );
    if (t.role === 'restore') args.push('-incoming', 'defer');
    // The 9p device is hot-plugged after the restore (migration.ts); its
    // backend must be here: QEMU 7.2 has no fsdev_add.
    if (cfg.share && sharedFs === 'virtio-9p') args.push('-fsdev', fsdevArg(cfg.share.dir));
  } else if (cfg.share && sharedFs === 'virtio-9p') {
    args.push(
      '-fsdev',
      fsdevArg(cfg.share.dir),
      '-device',
      `virtio-9p-pci,fsdev=${FSDEV_ID},mount_tag=${cfg.share.tag}`,
    );
  } else if (cfg.share) {
    args.push(
      // vhost-user needs guest RAM in shared memory virtiofsd can map.
      '-object',
      `memory-backend-memfd,id=mem,size=${cfg.memoryMiB}M,share=on`,
      '-chardev',
      `socket,id=vfs,path=${qemuOptValue(p.vfs)}`,
      '-device',
      `vhost-user-fs-pci,chardev=vfs,tag=${cfg.share.tag}`,
    );
  }
  return args;
}

/**
 * QEMU's 9p server for `dir`: `passthrough` keeps the guest's owners and
 * modes as the host's own (as virtiofsd does; QEMU runs as root), and
 * `multidevs=remap` keeps inode numbers unique across the file systems
 * bound into the share (a rootfs, volumes), which 9p would otherwise
 * merge into one device (docs/system/invocation: -fsdev).
 */
function fsdevArg(dir: string): string {
  return `local,id=${FSDEV_ID},path=${qemuOptValue(dir)},security_model=passthrough,multidevs=remap`;
}

function checkShareTag(tag: string, fs: SharedFs): void {
  // virtio-fs tags are at most 36 bytes (struct virtio_fs_config); QEMU
  // 7.2's 9p mount_tag at most 31 ("mount tag ... is longer than maximum
  // (31 bytes)", virtio-9p-pci's realize).
  const max = fs === 'virtio-fs' ? 36 : 31;
  if (!new RegExp(`^[\\w.-]{1,${String(max)}}$`).test(tag)) {
    throw new Error(`${fs} tag ${JSON.stringify(tag)} must be 1-${String(max)} of [A-Za-z0-9_.-]`);
  }
}
