import { describe, expect, it } from 'vitest';
import type { VmConfig } from '../../runtime/src/sandbox/vm/config.js';
import {
  kernelCommandLine,
  qemuArgs,
  qemuOptValue,
} from '../../runtime/src/sandbox/vm/qemu-args.js';

const base: VmConfig = {
  stateDir: '/run/kapsel/c1',
  kernel: '/guest/vmlinuz',
  initrd: '/guest/initrd.img',
  memoryMiB: 512,
  cpus: 2,
};

/** The value after `flag`, for flags that appear once. */
function valueOf(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i < 0 ? undefined : args[i + 1];
}

/** Every value given to a repeated flag such as -device or -chardev. */
function valuesOf(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1] ?? ''] : []));
}

describe('qemuArgs', () => {
  it('builds a paused q35 tcg guest with console, qmp and the agent port', () => {
    const args = qemuArgs(base, 'tcg');
    expect(valueOf(args, '-M')).toBe('q35');
    expect(valueOf(args, '-accel')).toBe('tcg,tb-size=64');
    expect(valueOf(args, '-cpu')).toBe('max');
    expect(valueOf(args, '-m')).toBe('512');
    expect(valueOf(args, '-smp')).toBe('2');
    for (const flag of ['-nodefaults', '-no-user-config', '-nographic', '-no-reboot', '-S']) {
      expect(args).toContain(flag);
    }
    expect(args).not.toContain('-daemonize');
    expect(valueOf(args, '-pidfile')).toBe('/run/kapsel/c1/qemu.pid');
    expect(valueOf(args, '-kernel')).toBe('/guest/vmlinuz');
    expect(valueOf(args, '-initrd')).toBe('/guest/initrd.img');
    expect(valueOf(args, '-append')).toBe(
      'console=ttyS0 quiet panic=-1 swiotlb=noforce initcall_blacklist=tracer_init_tracefs',
    );
    expect(valueOf(args, '-serial')).toBe('chardev:console');
    expect(valueOf(args, '-qmp')).toBe('unix:/run/kapsel/c1/qmp.sock,server=on,wait=off');
    expect(valuesOf(args, '-chardev')).toEqual([
      'stdio,id=console,signal=off',
      'socket,id=agent,path=/run/kapsel/c1/agent.sock,server=on,wait=off',
      'socket,id=dns,path=/run/kapsel/c1/dns.sock,server=on,wait=off',
    ]);
    expect(valuesOf(args, '-device')).toEqual([
      'virtio-serial-pci,id=vser0',
      'virtserialport,bus=vser0.0,chardev=agent,name=agent.channel.0,id=agentport',
      'virtserialport,bus=vser0.0,chardev=dns,name=kapsel.dns.0,id=dnsport',
      'virtio-balloon-pci,id=balloon0,free-page-reporting=on',
      'pcie-root-port,id=kapsel-rp0,bus=pcie.0,chassis=1',
      'pcie-root-port,id=kapsel-rp1,bus=pcie.0,chassis=2',
      'pcie-root-port,id=kapsel-rp2,bus=pcie.0,chassis=3',
      'pcie-root-port,id=kapsel-rp3,bus=pcie.0,chassis=4',
    ]);
    expect(args).not.toContain('-numa');
  });

  it('uses the host cpu under kvm', () => {
    const args = qemuArgs(base, 'kvm');
    expect(valueOf(args, '-accel')).toBe('kvm');
    expect(valueOf(args, '-cpu')).toBe('host');
  });

  it('adds shared memfd memory and vhost-user-fs for a share', () => {
    const args = qemuArgs({ ...base, share: { dir: '/bundle/rootfs', tag: 'rootfs' } }, 'tcg');
    expect(valueOf(args, '-object')).toBe('memory-backend-memfd,id=mem,size=512M,share=on');
    // The RAM backend is the machine's, not a NUMA node's: microvm has no NUMA.
    expect(valueOf(args, '-M')).toBe('q35,memory-backend=mem');
    expect(args).not.toContain('-numa');
    expect(valuesOf(args, '-chardev')).toContain('socket,id=vfs,path=/run/kapsel/c1/vfs.sock');
    expect(valuesOf(args, '-device')).toContain('vhost-user-fs-pci,chardev=vfs,tag=rootfs');
    // The shared directory itself is virtiofsd's business, not QEMU's.
    expect(args.join(' ')).not.toContain('/bundle/rootfs');
  });

  it('serves a 9p share from QEMU itself, with anonymous RAM and no virtiofsd', () => {
    const args = qemuArgs(
      { ...base, sharedFs: 'virtio-9p', share: { dir: '/vm/sh,ared', tag: 'kapsel-shared' } },
      'tcg',
    );
    expect(valueOf(args, '-M')).toBe('q35');
    expect(valuesOf(args, '-object')).toEqual([]);
    expect(valuesOf(args, '-fsdev')).toEqual([
      'local,id=kfs,path=/vm/sh,,ared,security_model=passthrough,multidevs=remap',
    ]);
    expect(valuesOf(args, '-device')).toContain('virtio-9p-pci,fsdev=kfs,mount_tag=kapsel-shared');
    expect(valuesOf(args, '-device')).toContain(
      'virtio-balloon-pci,id=balloon0,free-page-reporting=on',
    );
    expect(args.join(' ')).not.toContain('vhost-user');
  });

  it('maps a guest image read-only through virtio-pmem, apart from the RAM', () => {
    const path = '/guest/image,1.erofs';
    const args = qemuArgs(
      {
        ...base,
        image: { path, sizeBytes: 96 * 2 ** 20 },
        share: { dir: '/x', tag: 'rootfs' },
      },
      'tcg',
    );
    expect(valueOf(args, '-m')).toBe('512M,maxmem=608M');
    expect(valuesOf(args, '-object')).toContain(
      'memory-backend-file,id=gimage,mem-path=/guest/image,,1.erofs,size=96M,share=off,readonly=on',
    );
    expect(valuesOf(args, '-device')).toContain('virtio-pmem-pci,memdev=gimage,id=gimage0');
    expect(valueOf(args, '-append')).toContain('kapsel.image=/dev/pmem0');
  });

  it('refuses an image that is not whole 2 MiB pages', () => {
    expect(() =>
      qemuArgs({ ...base, image: { path: '/i', sizeBytes: 3 * 2 ** 20 } }, 'tcg'),
    ).toThrow(/not a multiple of 2 MiB/);
  });

  it('sizes the TCG translation buffer and reports free pages', () => {
    expect(valueOf(qemuArgs(base, 'tcg'), '-accel')).toBe('tcg,tb-size=64');
    expect(valueOf(qemuArgs({ ...base, tcgTbMiB: 16 }, 'tcg'), '-accel')).toBe('tcg,tb-size=16');
    expect(valuesOf(qemuArgs(base, 'tcg'), '-device')).toContain(
      'virtio-balloon-pci,id=balloon0,free-page-reporting=on',
    );
  });

  it('runs microvm with a PCIe host bridge', () => {
    const args = qemuArgs({ ...base, machine: 'microvm', share: { dir: '/x', tag: 'r' } }, 'tcg');
    expect(valueOf(args, '-M')).toBe('microvm,pcie=on,rtc=on,memory-backend=mem');
  });

  it('appends kernel parameters', () => {
    const args = qemuArgs({ ...base, kernelParams: ['kapsel.log=debug', 'kapsel.id=c1'] }, 'tcg');
    expect(valueOf(args, '-append')).toBe(
      'console=ttyS0 quiet panic=-1 swiotlb=noforce initcall_blacklist=tracer_init_tracefs kapsel.log=debug kapsel.id=c1',
    );
  });

  it('doubles commas in socket paths', () => {
    const args = qemuArgs({ ...base, stateDir: '/run/a,b' }, 'tcg');
    expect(valueOf(args, '-qmp')).toBe('unix:/run/a,,b/qmp.sock,server=on,wait=off');
    expect(qemuOptValue('a,b,,c')).toBe('a,,b,,,,c');
  });

  it.each([
    { name: 'too little memory', cfg: { memoryMiB: 32 }, errorContains: 'memoryMiB' },
    { name: 'fractional memory', cfg: { memoryMiB: 100.5 }, errorContains: 'memoryMiB' },
    { name: 'no cpus', cfg: { cpus: 0 }, errorContains: 'cpus' },
    {
      name: 'param with a space',
      cfg: { kernelParams: ['a b'] },
      errorContains: 'kernel parameter',
    },
    { name: 'empty param', cfg: { kernelParams: [''] }, errorContains: 'kernel parameter' },
    {
      name: 'tag with a comma',
      cfg: { share: { dir: '/x', tag: 'a,b' } },
      errorContains: 'virtio-fs tag',
    },
    {
      name: 'tag too long',
      cfg: { share: { dir: '/x', tag: 'x'.repeat(37) } },
      errorContains: 'virtio-fs tag',
    },
    {
      name: 'a 9p tag too long for QEMU 7.2',
      cfg: { sharedFs: 'virtio-9p' as const, share: { dir: '/x', tag: 'x'.repeat(32) } },
      errorContains: 'virtio-9p tag',
    },
  ])('refuses $name', ({ cfg, errorContains }) => {
    expect(() => qemuArgs({ ...base, ...cfg }, 'tcg')).toThrow(errorContains);
  });
});

describe('kernelCommandLine', () => {
  it('starts with the base parameters', () => {
    expect(kernelCommandLine()).toBe(
      'console=ttyS0 quiet panic=-1 swiotlb=noforce initcall_blacklist=tracer_init_tracefs',
    );
  });
});
