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

/**
 * Unplugs the NIC of root port `slot` (the engine removed its link: `docker
 * network disconnect`) and its tap backend. A PCIe unplug needs the guest to
 * let go; QEMU reports DEVICE_DELETED once it has, which is waited for up to
 * `timeoutMs` (the kernel's pciehp waits 5 s for the attention button).
 */
export async function unplugNic(qmp: QmpClient, slot: number, timeoutMs = 20_000): Promise<void> {
  const id = `kapsel-nic${slot}`;
  const deleted = qmp.waitEvent(
    (e) => e.event === 'DEVICE_DELETED' && e.data['device'] === id,
    AbortSignal.timeout(timeoutMs),
  );
  deleted.catch(() => undefined);
  await qmp.executeRaw('device_del', { id });
  await deleted;
  await qmp.executeRaw('netdev_del', { id: `kapsel-net${slot}` });
}
