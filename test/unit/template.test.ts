import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { templateKey } from '../../runtime/src/sandbox/template/key.js';
import { PidLock } from '../../runtime/src/sandbox/template/lock.js';
import { templateLayout } from '../../runtime/src/sandbox/template/settings.js';
import { dropOrphans, templateDamage } from '../../runtime/src/sandbox/template/store.js';
import type { VmConfig } from '../../runtime/src/sandbox/vm/config.js';
import { qemuArgs } from '../../runtime/src/sandbox/vm/qemu-args.js';

const dir = mkdtempSync(join(tmpdir(), 'kapsel-template-unit-'));
const file = (name: string): string => {
  const p = join(dir, name);
  writeFileSync(p, name);
  return p;
};
const base: VmConfig = {
  stateDir: join(dir, 'vm1'),
  kernel: file('vmlinux'),
  initrd: file('initrd.img'),
  memoryMiB: 512,
  cpus: 1,
  share: { dir: '/srv/share', tag: 'kapsel-shared' },
};
const qemu = file('qemu-system-x86_64');

/** Every value given to a repeated flag such as -device or -object. */
function valuesOf(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1] ?? ''] : []));
}

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('templated QEMU arguments', () => {
  it('have shared RAM and a root port for the share, no vhost-user-fs; a restore waits for -incoming', () => {
    const save = qemuArgs({ ...base, template: { role: 'save', ramFile: '/t/ram' } }, 'tcg');
    const restore = qemuArgs(
      { ...base, template: { role: 'restore', stateFile: '/t/state', ramFile: '/t/ram' } },
      'tcg',
    );
    for (const args of [save, restore]) {
      expect(valuesOf(args, '-object')).toContain(
        'memory-backend-file,id=mem,size=512M,mem-path=/t/ram,share=on',
      );
      expect(valuesOf(args, '-device')).toContain(
        'pcie-root-port,id=kapsel-fsport,bus=pcie.0,chassis=5',
      );
      expect(args.join(' ')).not.toContain('vhost-user-fs');
    }
    expect(save).not.toContain('-incoming');
    expect(restore.slice(-2)).toEqual(['-incoming', 'defer']);
    // The devices are the same, or the state would not load.
    expect(restore.slice(0, -2)).toEqual(save);
  });

  it('for 9p: no balloon, and a clone maps the template RAM privately with the fsdev for its device', () => {
    const nine = { ...base, sharedFs: 'virtio-9p' as const };
    const save = qemuArgs({ ...nine, template: { role: 'save', ramFile: '/t/ram' } }, 'tcg');
    const restore = qemuArgs(
      {
        ...nine,
        share: { dir: '/vm/shared', tag: 'kapsel-shared' },
        template: { role: 'restore', stateFile: '/t/state', ramFile: '/t/ram', private: true },
      },
      'tcg',
    );
    expect(valuesOf(save, '-object')).toContain(
      'memory-backend-file,id=mem,size=512M,mem-path=/t/ram,share=on',
    );
    expect(valuesOf(restore, '-object')).toContain(
      'memory-backend-file,id=mem,size=512M,mem-path=/t/ram,share=off',
    );
    for (const args of [save, restore]) {
      // A guest's balloon request would punch holes in the shared template file.
      expect(args.join(' ')).not.toContain('virtio-balloon');
      expect(args.join(' ')).not.toContain('virtio-9p-pci');
    }
    expect(valuesOf(restore, '-fsdev')).toEqual([
      'local,id=kfs,path=/vm/shared,security_model=passthrough,multidevs=remap',
    ]);
    // The same devices as the template, or the state would not load.
    expect(valuesOf(restore, '-device')).toEqual(valuesOf(save, '-device'));
    // A virtio-fs VM keeps its balloon, and its template shape differs.
    const fsSave = qemuArgs({ ...base, template: { role: 'save', ramFile: '/t/ram' } }, 'tcg');
    expect(valuesOf(fsSave, '-device')).toContain(
      'virtio-balloon-pci,id=balloon0,free-page-reporting=on',
    );
  });

  it('refuses a private RAM mapping for a virtio-fs clone: virtiofsd would see the template', () => {
    expect(() =>
      qemuArgs(
        {
          ...base,
          share: { dir: '/vm/shared', tag: 'kapsel-shared' },
          template: { role: 'restore', stateFile: '/t/state', ramFile: '/t/ram', private: true },
        },
        'tcg',
      ),
    ).toThrow(/virtio-9p/);
  });
});

describe('templateKey', () => {
  it('is the same for two VMs of one shape, and changes with the shape or a file', async () => {
    const a = await templateKey(base, 'tcg', qemu);
    const b = await templateKey({ ...base, stateDir: join(dir, 'vm2') }, 'tcg', qemu);
    expect(b.key).toBe(a.key);
    expect(a.key).toMatch(/^[0-9a-f]{16}$/);
    expect((await templateKey({ ...base, memoryMiB: 1024 }, 'tcg', qemu)).key).not.toBe(a.key);
    expect((await templateKey(base, 'kvm', qemu)).key).not.toBe(a.key);
    // 9p clones need a template without a balloon: a shape of its own.
    expect((await templateKey({ ...base, sharedFs: 'virtio-9p' }, 'tcg', qemu)).key).not.toBe(
      a.key,
    );
    expect((await templateKey({ ...base, sharedFs: 'virtio-fs' }, 'tcg', qemu)).key).toBe(a.key);
    const later = new Date(Date.now() + 60_000);
    utimesSync(base.kernel, later, later);
    const rebuilt = await templateKey(base, 'tcg', qemu);
    expect(rebuilt.key).not.toBe(a.key);
    // Same shape: the older template is the one to drop.
    expect(rebuilt.shapeKey).toBe(a.shapeKey);
  });

  it('fails naming the file that is missing', async () => {
    await expect(templateKey({ ...base, initrd: join(dir, 'nope') }, 'tcg', qemu)).rejects.toThrow(
      /nope/,
    );
  });
});

describe('PidLock', () => {
  it('is exclusive, takes over a dead owner lock, and returns undefined once the work is done', async () => {
    const path = join(dir, 'k.lock');
    const lock = await PidLock.acquire(path, () => Promise.resolve(false), { timeoutMs: 1000 });
    expect(lock).toBeDefined();
    await expect(
      PidLock.acquire(path, () => Promise.resolve(false), { timeoutMs: 300 }),
    ).rejects.toThrow(/held by pid/);
    expect(await PidLock.acquire(path, () => Promise.resolve(true), { timeoutMs: 300 })).toBe(
      undefined,
    );
    await lock?.release();
    // A pid that cannot be alive (above pid_max).
    writeFileSync(path, '99999999');
    const taken = await PidLock.acquire(path, () => Promise.resolve(false), { timeoutMs: 1000 });
    expect(taken).toBeDefined();
    await taken?.release();
  });
});

describe('templateDamage', () => {
  it('passes a template whose files have the sizes meta.json saved, and names what differs', async () => {
    const layout = templateLayout(join(dir, 'store'), '0123456789abcdef');
    mkdirSync(layout.dir, { recursive: true });
    writeFileSync(layout.state, 'QEVM-state');
    writeFileSync(layout.ram, Buffer.alloc(4096));
    expect(await templateDamage(layout)).toMatch(/meta\.json/);
    writeFileSync(layout.meta, JSON.stringify({ stateBytes: 10, ramBytes: 4096 }));
    expect(await templateDamage(layout)).toBeUndefined();
    truncateSync(layout.ram, 1024);
    expect(await templateDamage(layout)).toBe(`${layout.ram} has 1024 bytes, 4096 were saved`);
    rmSync(layout.state);
    expect(await templateDamage(layout)).toBe(`${layout.state} is missing`);
  });
});

describe('dropOrphans', () => {
  it("removes the working directories of dead template makers, not a live one's or a template", async () => {
    const root = join(dir, 'orphans');
    const key = 'fedcba9876543210';
    // 99999999 is above pid_max: never alive.
    const names = {
      deadMake: `.make-${key}-99999999-a1b2c3`,
      deadStale: `.stale-${key}-99999999`,
      deadBad: `.bad-${key}-99999999`,
      liveMake: `.make-${key}-${process.pid}-d4e5f6`,
      template: key,
      lock: `${key}.lock`,
    };
    mkdirSync(root);
    for (const n of Object.values(names)) {
      if (n.endsWith('.lock')) writeFileSync(join(root, n), '99999999');
      else mkdirSync(join(root, n));
    }
    await dropOrphans(root, pino({ level: 'silent' }));
    expect(readdirSync(root).sort()).toEqual([names.liveMake, names.template, names.lock].sort());
    expect(existsSync(join(root, names.deadMake))).toBe(false);
  });
});
