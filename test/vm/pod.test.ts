import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import type { Process, Spec, State } from '../../oci/spec.js';
import { vmDirOf } from '../../runtime/src/sandbox/vm-dir.js';
import {
  kapsel,
  kapselToFiles,
  makeBundle,
  removeBundles,
  processesMentioning,
  vmMissing,
} from '../support/kapsel-cli.js';

const skip = vmMissing();

/** CRI annotations put a pod's containers into one VM, which goes with the last of them. */
describe.skipIf(skip !== undefined)(
  `pods: several containers in one VM${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const root = mkdtempSync(join(tmpdir(), 'kapsel-root-'));
    const work = mkdtempSync(join(tmpdir(), 'kapsel-pod-'));
    afterAll(() => {
      rmSync(root, { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
      removeBundles();
    });
    const k = (...args: string[]): ReturnType<typeof kapsel> => kapsel(['--root', root, ...args]);
    const qemus = (sandbox: string): string[] =>
      processesMentioning(vmDirOf(root, sandbox)).filter((p) => p.includes('qemu-system'));

    it.each([
      ['containerd', 'io.kubernetes.cri.container-type', 'io.kubernetes.cri.sandbox-id'],
      ['CRI-O', 'io.kubernetes.cri-o.ContainerType', 'io.kubernetes.cri-o.SandboxID'],
    ])(
      '%s annotations: a second container joins the sandbox VM',
      async (_engine, typeKey, idKey) => {
        const pod = `pod-${typeKey.length}`;
        const app = `${pod}-app`;
        const sandboxBundle = makeBundle((spec) => {
          spec.process = { ...requireProcess(spec), args: ['sleep', '1000'] };
          spec.annotations = { [typeKey]: 'sandbox', [idKey]: pod };
        });
        const appBundle = makeBundle((spec) => {
          spec.process = {
            ...requireProcess(spec),
            args: ['sh', '-c', 'echo "app in $(uname -r)"'],
          };
          spec.annotations = { [typeKey]: 'container', [idKey]: pod };
        });
        expect(
          (await kapselToFiles(['--root', root, 'run', '-d', '--bundle', sandboxBundle, pod], work))
            .code,
        ).toBe(0);
        expect(qemus(pod)).toHaveLength(1);
        const created = await kapselToFiles(
          ['--root', root, 'create', '--bundle', appBundle, app],
          work,
        );
        expect(created.stderr()).toBe('');
        expect(created.code).toBe(0);
        // Still one VM: the app container went into the sandbox's.
        expect(qemus(pod)).toHaveLength(1);
        expect(qemus(app)).toEqual([]);
        expect((await k('start', app)).code).toBe(0);
        for (let i = 0; i < 100; i++) {
          const s = JSON.parse((await k('state', app)).stdout) as State;
          if (s.status === 'stopped') break;
          await sleep(100);
        }
        expect(created.stdout()).toMatch(/^app in \S+\n$/);
        expect((await k('delete', app)).code).toBe(0);
        // The VM stays for the sandbox container.
        expect(qemus(pod)).toHaveLength(1);
        expect((JSON.parse((await k('state', pod)).stdout) as State).status).toBe('running');
        expect((await k('delete', '--force', pod)).code).toBe(0);
        expect(qemus(pod)).toEqual([]);
        expect(processesMentioning(vmDirOf(root, pod))).toEqual([]);
        expect(existsSync(vmDirOf(root, pod))).toBe(false);
        expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(root);
      },
    );

    it('refuses a container whose sandbox is not running', async () => {
      const b = makeBundle((spec) => {
        spec.annotations = {
          'io.kubernetes.cri.container-type': 'container',
          'io.kubernetes.cri.sandbox-id': 'no-such-pod',
        };
      });
      const r = await k('create', '--bundle', b, 'orphan');
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('sandbox no-such-pod is not running');
      expect(existsSync(join(root, 'orphan'))).toBe(false);
    });
  },
);

function requireProcess(spec: Spec): Process {
  if (spec.process === undefined) throw new Error('default spec has no process');
  return spec.process;
}
