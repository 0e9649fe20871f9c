// Boot timeline: how long each stage of a kapsel sandbox takes under this
// machine's QEMU, against the floor of the same kernel booting a trivial init
// that opens the same virtio-serial port. Both are measured in this run and
// compared as a ratio, since absolute times on these machines are noise.
//
// A sandbox started from a VM template (KAPSEL_TEMPLATE=on) is measured
// beside them; its template is made before the runs, as on a host that has
// started one sandbox of this shape before. So is the same guest with bare
// node in place of the agent (bare-node.ts): no Node agent can be ready
// sooner than that.
//
//   npm run bench:boot [-- --runs N]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseArgs } from 'node:util';
import { loadSettings } from '../runtime/src/config/load.js';
import { guestImage, type GuestImageMode } from '../runtime/src/sandbox/guest-image.js';
import { packageRoot } from '../runtime/src/sys/package-root.js';
import { shareStorage } from '../runtime/src/sandbox/share-storage.js';
import type { SharedFs } from '../runtime/src/sandbox/vm/config.js';
import { Sandbox } from '../runtime/src/sandbox/boot.js';
import { Vm } from '../runtime/src/sandbox/vm/index.js';
import { makeBusyboxRootfs } from '../test/support/busybox.js';
import { bareNodeKernelParam } from './bare-node.js';
import { testSpec } from '../test/support/spec.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' } } });
const runs = Number(values.runs);
const log = pino({ level: 'warn' });
const root = mkdtempSync(join(tmpdir(), 'kapsel-bench-'));
const rootfs = makeBusyboxRootfs();

type Marks = Record<string, number>;

const since = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

/**
 * One sandbox start, with the guest's files delivered as `mode` says
 * (guest-image.ts: the virtio-pmem image with DAX, or the whole initrd).
 */
async function bootKapsel(i: number, mode: GuestImageMode): Promise<Marks> {
  const stateDir = mkdtempSync(join(root, `kapsel-${mode}-${i}-`));
  const settings = loadSettings({
    env: { ...process.env, KAPSEL_GUEST_IMAGE: mode, KAPSEL_TEMPLATE: 'off' },
  });
  const t0 = process.hrtime.bigint();
  const sandbox = await Sandbox.start({ stateDir, shareDir: rootfs, log, settings });
  const marks: Marks = {};
  try {
    const init = await sandbox.vm.console.waitFor(/kapsel-init: started/, { includeTail: true });
    marks['init started'] = Number(init.ns) / 1e6;
    marks['agent ready (port open)'] = sandbox.vm.timeline.ms('agentPortOpen') ?? NaN;
    marks['agent answered Check'] = since(t0);
    const id = `bench-${i}`;
    // The share is the rootfs itself: the agent mounts it as the container's root.
    const mountPoint = `/run/kapsel/containers/${id}/rootfs`;
    await sandbox.agent.createContainer({
      containerId: id,
      ociSpecJson: JSON.stringify(testSpec(mountPoint, ['/bin/true'])),
      storages: [shareStorage('virtio-fs', mountPoint)],
    });
    await sandbox.agent.startContainer(id);
    await sandbox.agent.waitProcess(id);
    marks['container exited'] = since(t0);
    await sandbox.agent.removeContainer(id);
  } finally {
    await sandbox.stop();
  }
  return {
    ...pick(sandbox.vm.timeline.toJSON(), [
      'spawned',
      'qmpReady',
      'firstConsoleLine',
      'modulesLoaded',
      'imageMounted',
      'agentExec',
    ]),
    ...marks,
  };
}

/**
 * One sandbox restored from the template (pmem image), then the same
 * /bin/true; `fs` is its shared_fs (a 9p clone maps the template's RAM
 * instead of copying it, and has a template of its own).
 */
async function bootTemplated(i: number, fs: SharedFs): Promise<Marks> {
  const stateDir = mkdtempSync(join(root, `templated-${fs}-${i}-`));
  const settings = loadSettings({
    env: {
      ...process.env,
      KAPSEL_GUEST_IMAGE: 'pmem',
      KAPSEL_TEMPLATE: 'on',
      KAPSEL_TEMPLATE_DIR: join(root, 'templates'),
      KAPSEL_SHARED_FS: fs,
    },
  });
  const t0 = process.hrtime.bigint();
  const sandbox = await Sandbox.start({ stateDir, shareDir: rootfs, log, settings });
  const marks: Marks = { 'agent answered Check': since(t0) };
  try {
    if (!sandbox.vm.timeline.has('restored')) throw new Error('the sandbox was not restored');
    await runTrue(sandbox, `bench-t${i}`, fs);
    marks['container exited'] = since(t0);
  } finally {
    await sandbox.stop();
  }
  return {
    ...pick(sandbox.vm.timeline.toJSON(), [
      'spawned',
      'qmpReady',
      'restoreBegun',
      'restored',
      'fsPlugged',
      'resumed',
      'agentAnswered',
      'guestRestored',
    ]),
    ...marks,
  };
}

/** Creates, starts, waits for and removes a container running /bin/true on the share. */
async function runTrue(sandbox: Sandbox, id: string, fs: SharedFs = 'virtio-fs'): Promise<void> {
  const mountPoint = `/run/kapsel/containers/${id}/rootfs`;
  await sandbox.agent.createContainer({
    containerId: id,
    ociSpecJson: JSON.stringify(testSpec(mountPoint, ['/bin/true'])),
    storages: [shareStorage(fs, mountPoint)],
  });
  await sandbox.agent.startContainer(id);
  await sandbox.agent.waitProcess(id);
  await sandbox.agent.removeContainer(id);
}

/**
 * The pmem guest with bare node in place of the agent (bare-node.ts): the
 * soonest any Node agent could open its port on this machine.
 */
async function bootBareNode(i: number): Promise<Marks> {
  const image = guestImage();
  const vm = await Vm.boot(
    {
      stateDir: mkdtempSync(join(root, `bare-${i}-`)),
      kernel: image.kernel,
      initrd: image.initrd,
      ...(image.image === undefined ? {} : { image: image.image }),
      memoryMiB: 1024,
      cpus: 1,
      kernelParams: [bareNodeKernelParam()],
    },
    log,
  );
  try {
    await vm.waitAgentReady();
    return pick(vm.timeline.toJSON(), [
      'spawned',
      'initStarted',
      'modulesLoaded',
      'agentExec',
      'agentPortOpen',
    ]);
  } finally {
    await vm.shutdown(5000);
  }
}

async function bootFloor(i: number): Promise<Marks> {
  const stateDir = mkdtempSync(join(root, `floor-${i}-`));
  const image = guestImage();
  const vm = await Vm.boot(
    {
      stateDir,
      kernel: image.kernel,
      initrd: join(packageRoot(), 'build/guest/floor-initrd.img'),
      memoryMiB: 1024,
      cpus: 1,
    },
    log,
  );
  try {
    await vm.waitAgentReady();
    const init = await vm.console.waitFor(/kapsel-floor: started/, { includeTail: true });
    return {
      ...pick(vm.timeline.toJSON(), ['spawned', 'qmpReady', 'firstConsoleLine']),
      'init started': Number(init.ns) / 1e6,
      'port open': vm.timeline.ms('agentPortOpen') ?? NaN,
    };
  } finally {
    await vm.shutdown(5000);
  }
}

function pick(all: Record<string, number>, keys: string[]): Marks {
  return Object.fromEntries(keys.filter((k) => k in all).map((k) => [k, all[k] ?? NaN]));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

function summarize(name: string, all: Marks[]): Marks {
  const keys = Object.keys(all[0] ?? {});
  const out: Marks = {};
  console.log(`\n${name} (median of ${all.length}, ms since boot was called)`);
  for (const k of keys) {
    out[k] = median(all.map((m) => m[k] ?? NaN));
    console.log(`  ${k.padEnd(26)} ${out[k].toFixed(0).padStart(7)}`);
  }
  return out;
}

try {
  const modes: GuestImageMode[] = ['pmem', 'initrd'];
  const kapsel: Record<GuestImageMode, Marks[]> = { pmem: [], initrd: [] };
  const floor: Marks[] = [];
  const templated: Marks[] = [];
  const templated9p: Marks[] = [];
  const bare: Marks[] = [];
  // Makes the templates (a boot and a save each), not measured.
  await bootTemplated(-1, 'virtio-fs');
  await bootTemplated(-1, 'virtio-9p');
  // Interleaved, so drift in machine load hits all alike.
  for (let i = 0; i < runs; i++) {
    floor.push(await bootFloor(i));
    for (const mode of modes) kapsel[mode].push(await bootKapsel(i, mode));
    templated.push(await bootTemplated(i, 'virtio-fs'));
    templated9p.push(await bootTemplated(i, 'virtio-9p'));
    bare.push(await bootBareNode(i));
  }
  const f = summarize('floor: same kernel, trivial init opening the agent port', floor);
  const t = summarize(
    'kapsel from a VM template (pmem image): restore, virtio-fs hot-plug, Check, RestoreGuest, /bin/true',
    templated,
  );
  const floorReady = f['port open'] ?? NaN;
  console.log(
    `\ntemplated: first RPC answered / floor = ${((t['agent answered Check'] ?? NaN) / floorReady).toFixed(2)} (goal < 0.5)`,
  );
  console.log(
    `templated: container-exit / floor = ${((t['container exited'] ?? NaN) / floorReady).toFixed(2)}`,
  );
  const t9 = summarize(
    'kapsel from a VM template, shared_fs virtio-9p: RAM mapped copy-on-write, 9p hot-plug, Check, RestoreGuest, /bin/true',
    templated9p,
  );
  console.log(
    `\ntemplated 9p: first RPC answered / floor = ${((t9['agent answered Check'] ?? NaN) / floorReady).toFixed(2)} (goal < 0.5)`,
  );
  console.log(
    `templated 9p: container-exit / floor = ${((t9['container exited'] ?? NaN) / floorReady).toFixed(2)}`,
  );
  for (const mode of modes) {
    const k = summarize(
      `kapsel, guest image ${mode === 'pmem' ? 'mapped (virtio-pmem, DAX)' : 'in the initrd'}: init, node agent, container /bin/true`,
      kapsel[mode],
    );
    const ratio = (k['agent ready (port open)'] ?? NaN) / (f['port open'] ?? NaN);
    console.log(`\n${mode}: agent-ready / floor = ${ratio.toFixed(2)}`);
    console.log(
      `${mode}: container-exit / floor = ${((k['container exited'] ?? NaN) / (f['port open'] ?? NaN)).toFixed(2)}`,
    );
  }
  const b = summarize(
    'bare node in place of the agent (pmem image): the soonest a Node agent could be ready',
    bare,
  );
  console.log(
    `
bare node: port open / floor = ${((b['agentPortOpen'] ?? NaN) / floorReady).toFixed(2)} (a cold boot's goal is 1.3)`,
  );
} finally {
  rmSync(root, { recursive: true, force: true });
  rmSync(rootfs, { recursive: true, force: true });
}
