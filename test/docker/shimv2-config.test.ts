import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { podKey, socketPathOf, vmDirOfPod } from '../../runtime/src/shimv2/address.js';
import { CONTAINERD, PrivateContainerd, SHIM_IMAGE } from '../support/containerd.js';
import { CTR, engineMissing } from '../support/engines.js';
import { processesMentioning, ROOT, vmMissing } from '../support/kapsel-cli.js';

const SHIM = join(ROOT, 'bin', 'containerd-shim-kapsel-v2');
const RUNTIME = 'io.containerd.kapsel.v2';
const NS = 'kapsel-test';
const skip =
  engineMissing(CONTAINERD, CTR) ??
  vmMissing() ??
  (existsSync(join(ROOT, 'build/dist/shimv2.mjs')) ? undefined : 'build/dist/shimv2.mjs missing');

/**
 * The shim v2 reads the file containerd names in the runtime options'
 * ConfigPath (runtimeoptions.v1.Options: the CRI plugin's `ConfigPath`,
 * `ctr run --runtime-config-path`), as Kata's shim does.
 */
describe.skipIf(skip !== undefined)(
  `containerd shim v2 with a configuration file${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let c: PrivateContainerd;
    const work = mkdtempSync(join(tmpdir(), 'kapsel-shimcfg-'));
    beforeAll(async () => {
      c = await PrivateContainerd.start();
      await c.importBusybox();
    });
    afterAll(async () => {
      await c.stop();
      rmSync(work, { recursive: true, force: true });
      // The parent made for the tasks' cgroups (ctr's default /NS/ID; like
      // runc, the shim removes only the directory of the pod).
      for (const h of readdirSync('/sys/fs/cgroup')) {
        try {
          rmdirSync(join('/sys/fs/cgroup', h, NS));
        } catch {
          // Not made in this hierarchy, or still in use by another file's tasks.
        }
      }
    });

    const leftovers = (id: string): string[] => {
      const key = podKey(c.address, NS, id);
      return [
        ...processesMentioning(vmDirOfPod(key)),
        ...processesMentioning(`-id ${id} `).filter((p) => p.includes(SHIM)),
        ...[socketPathOf(key), vmDirOfPod(key)].filter((p) => existsSync(p)),
      ];
    };

    it('sizes the VM and places the shim log as the ConfigPath file says', async () => {
      const config = join(work, 'good.toml');
      const shimLog = join(work, 'shim.log');
      writeFileSync(
        config,
        `[hypervisor]\ndefault_memory = 384\n[runtime]\nshim_log = "${shimLog}"\n`,
      );
      const id = 'cfg-good';
      const r = await c.ctr([
        'run',
        '--rm',
        '--runtime',
        RUNTIME,
        '--runtime-config-path',
        config,
        SHIM_IMAGE,
        id,
        'cat',
        '/proc/meminfo',
      ]);
      expect(r.code, r.stderr).toBe(0);
      const memTotalKiB = Number(/MemTotal:\s+(\d+) kB/.exec(r.stdout)?.[1]);
      expect(memTotalKiB).toBeGreaterThan(256 * 1024);
      expect(memTotalKiB).toBeLessThanOrEqual(384 * 1024);
      // The serving shim (started by `start`) read the same file.
      expect(readFileSync(shimLog, 'utf8')).toContain('"msg":"shim serving"');
      expect(leftovers(id)).toEqual([]);
    });

    it('fails the task on a bad file with the file and the key, and leaves nothing', async () => {
      const config = join(work, 'bad.toml');
      writeFileSync(config, '[hypervisor]\nmachine_type = "pc"\n');
      const id = 'cfg-bad';
      const r = await c.ctr([
        'run',
        '--rm',
        '--runtime',
        RUNTIME,
        '--runtime-config-path',
        config,
        SHIM_IMAGE,
        id,
        'true',
      ]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(
        `config ${config}: hypervisor.machine_type: expected one of "q35", "microvm", got "pc"`,
      );
      await c.ctr(['container', 'delete', id]);
      expect(leftovers(id)).toEqual([]);
    });
  },
);
