import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vmDirLayout, vmDirOf } from '../../runtime/src/sandbox/vm-dir.js';
import {
  GUEST_DIR,
  kapsel,
  kapselToFiles,
  makeBundle,
  removeBundles,
  vmMissing,
} from '../support/kapsel-cli.js';

const skip = vmMissing();

// The cold-boot suite: templates are on by default, and this file asserts
// the phases of a guest that boots (init, modules, image, agent start), so
// every sandbox here boots cold. Templated starts are test/vm/template.test.ts.
describe.skipIf(skip !== undefined)(
  `light sandboxes in a real VM, booted cold${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const root = mkdtempSync(join(tmpdir(), 'kapsel-root-'));
    const work = mkdtempSync(join(tmpdir(), 'kapsel-light-'));
    const saved = process.env['KAPSEL_TEMPLATE'];

    beforeAll(() => {
      // Inherited by the kapsel processes each test spawns.
      process.env['KAPSEL_TEMPLATE'] = 'off';
    });

    afterAll(() => {
      if (saved === undefined) delete process.env['KAPSEL_TEMPLATE'];
      else process.env['KAPSEL_TEMPLATE'] = saved;
      removeBundles();
      rmSync(root, { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
    });

    it('boots from the mapped guest image and logs each phase of the start with --debug', async () => {
      const bundle = makeBundle((spec) => {
        if (spec.process) {
          spec.process.terminal = false;
          // The agent's root is the guest image, mounted read-only with DAX.
          spec.process.args = ['true'];
        }
      });
      const logFile = join(work, 'kapsel.log');
      const r = await kapselToFiles(
        ['--root', root, '--debug', '--log', logFile, 'run', '-b', bundle, 'light1'],
        work,
      );
      expect(r.code, r.stderr()).toBe(0);
      const line = readFileSync(logFile, 'utf8')
        .split('\n')
        .filter((l) => l.includes('boot timeline (ms)'))
        .at(-1);
      expect(line).toBeDefined();
      const phases = [...(line ?? '').matchAll(/ (\w+)=([\d.]+)/g)].map((m) => m[1]);
      const order = [
        'spawned',
        'initStarted',
        'modulesLoaded',
        'imageMounted',
        'agentExec',
        'agentPortOpen',
        'agentAnswered',
        'containerCreated',
        'containerStarted',
      ];
      // Each phase happened, in this order (the line lists them by time).
      expect(phases.filter((p) => order.includes(p ?? ''))).toEqual(order);
      // The image exists as rootfs/build.sh makes it: a whole number of 2 MiB pages.
      expect(statSync(join(GUEST_DIR, 'image.erofs')).size % (2 * 1024 * 1024)).toBe(0);
    });

    it('starts the agent from the V8 code cache made with the image', async () => {
      // init runs agent-boot.cjs, which compiles the bundle with the cache
      // and says how in the agent's first line ("accepted": V8 took it; the
      // fallbacks, "rejected" and "missing", are test/host/agent-code-cache).
      const bundle = makeBundle((spec) => {
        if (spec.process) {
          spec.process.terminal = false;
          spec.process.args = ['sleep', '600'];
        }
      });
      const r = await kapselToFiles(['--root', root, 'run', '-d', '-b', bundle, 'light2'], work);
      expect(r.code, r.stderr()).toBe(0);
      try {
        const console = readFileSync(vmDirLayout(vmDirOf(root, 'light2')).console, 'utf8');
        expect(console).toContain('started agent /usr/bin/node /opt/kapsel/agent-boot.cjs');
        // The modules' files leave the initramfs (guest RAM, which a VM
        // template copies into every clone) once they are loaded.
        const removed = /loaded (\d+) kernel modules .*, removed their files \((\d+) KiB\)/.exec(
          console,
        );
        expect(removed, console).not.toBeNull();
        expect(Number(removed?.[1])).toBeGreaterThan(10);
        expect(Number(removed?.[2])).toBeGreaterThan(1024);
        const serving = console
          .split('\n')
          .find((l) => l.includes('"msg":"agent serving on virtio-serial port"'));
        expect(serving, console).toBeDefined();
        const facts = JSON.parse((serving ?? '').slice((serving ?? '').indexOf('{'))) as Record<
          string,
          unknown
        >;
        expect(facts['codeCache']).toBe('accepted');
        expect(facts['cpuMs']).toBeGreaterThan(0);
        // Where the agent's own start went (agent/src/boot/marks.ts): every
        // step, in order, each ending no sooner than the one before.
        const steps = Object.entries(facts['startMs'] as Record<string, number>);
        expect(steps.map(([name]) => name)).toEqual([
          'loader',
          'compiled',
          'evaluated',
          'native',
          'sandbox',
          'service',
          'portFound',
          'portOpen',
        ]);
        const at = steps.map(([, ms]) => ms);
        expect(at.every((ms, i) => i === 0 || ms >= (at[i - 1] ?? Infinity))).toBe(true);
        expect(at.at(-1)).toBeLessThanOrEqual(Number(facts['uptimeMs']));
      } finally {
        await kapsel(['--root', root, 'delete', '-f', 'light2']);
      }
    });
  },
);
