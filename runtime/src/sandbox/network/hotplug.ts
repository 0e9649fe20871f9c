import type { QmpClient } from '../vm/qmp.js';

/**
 * PCIe root ports QEMU is started with, empty, for NICs hot-plugged once the
 * engine has configured the namespace (Docker does in a prestart hook, after
 * the VM booted). q35's root bus takes no hot-plug; a root port takes one
 * device.
 */
export const HOTPLUG_PORTS = 4;

export function hotplugPortId(slot: number): string {
  return `kapsel-rp${slot}`;
}

/** `-device` values for the empty root ports (chassis numbers must differ). */
export function hotplugPortDevices(): string[] {
  return Array.from(
    { length: HOTPLUG_PORTS },
    (_, i) => `pcie-root-port,id=${hotplugPortId(i)},bus=pcie.0,chassis=${i + 1}`,
  );
}

/**
 * Hot-plugs a virtio-net NIC backed by an existing tap into root port
 * `slot`, with the MAC of the host link it stands for (the guest then
 * answers ARP for that MAC, as the engine expects). vhost is off: it needs
 * /dev/vhost-net, which a nested or emulated host may lack.
 */
export async function plugNic(
  qmp: QmpClient,
  slot: number,
  tap: string,
  mac: string,
): Promise<void> {
  const netdev = `kapsel-net${slot}`;
  await qmp.executeRaw('netdev_add', {
    type: 'tap',
    id: netdev,
    ifname: tap,
    script: 'no',
    downscript: 'no',
    vhost: false,
  });
  try {
    await qmp.executeRaw('device_add', {
      driver: 'virtio-net-pci',
      id: `kapsel-nic${slot}`,
      netdev,
      mac,
      bus: hotplugPortId(slot),
    });
  } catch (err) {
    await qmp.executeRaw('netdev_del', { id: netdev }).catch(() => undefined);
    throw err;
  }
}
