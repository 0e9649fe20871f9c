import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Spec } from '../../oci/spec.js';
import { vmDirLayout, vmDirOf } from '../../runtime/src/sandbox/vm-dir.js';
import {
  DEFAULT_BUNDLE,
  GUEST_DIR,
  kapsel,
  kapselToFiles,
  makeBundle,
  processesMentioning,
  removeBundles,
  startKapsel,
  vmMissing,
} from '../support/kapsel-cli.js';
import { overrideEnv } from '../support/env.js';
import { hostNetworkSnapshot, TestNetns } from '../support/netns.js';

const skip = vmMissing();

/** The default spec running `script` under sh, without a terminal. */
function shSpec(spec: Spec, script: string): void {
  if (spec.process === undefined) throw new Error('default spec has no process');
  spec.process = { ...spec.process, args: ['sh', '-c', script], terminal: false };
}

/** The last boot timeline `--debug` logged, as mark -> ms. */
function lastTimeline(logFile: string): Record<string, number> {
  const line = readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes('boot timeline (ms)'))
    .at(-1);
  if (line === undefined) throw new Error(`no boot timeline in ${logFile}`);
  const ms = / msg="boot timeline \(ms\):([^"]*)"/.exec(line)?.[1] ?? '';
  return Object.fromEntries(
    [...ms.matchAll(/ (\w+)=([\d.]+)/g)].map((m): [string, number] => [m[1] ?? '', Number(m[2])]),
  );
}

/** Template directories (16 hex) under `dir`. */
function templates(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((n) => /^[0-9a-f]{16}$/.test(n)) : [];
}

/**
 * Sandboxes started from a VM template (KAPSEL_TEMPLATE=on): the first start
 * makes the template, the others restore it, hot-plug virtio-fs and reseed.
 * One template directory for the file, so the template is made once.
 */
describe.skipIf(skip !== undefined)(
  `sandboxes from a VM template${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const root = mkdtempSync(join(tmpdir(), 'kapsel-root-'));
    const work = mkdtempSync(join(tmpdir(), 'kapsel-tpl-'));
    const templateDir = join(work, 'templates');
    let restoreEnv = (): void => undefined;
    const k = (...args: string[]): ReturnType<typeof kapsel> => kapsel(['--root', root, ...args]);
    let ids: string[] = [];
    beforeAll(() => {
      restoreEnv = overrideEnv({ KAPSEL_TEMPLATE: 'on', KAPSEL_TEMPLATE_DIR: templateDir });
    });
    afterEach(async () => {
      for (const id of ids) await k('delete', '--force', id);
      ids = [];
      process.env['KAPSEL_TEMPLATE'] = 'on';
      delete process.env['KAPSEL_KERNEL'];
    });
    afterAll(() => {
      restoreEnv();
      removeBundles();
      rmSync(root, { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
    });

    /** Nothing of sandbox `id` is left on the host; its template stays. */
    function expectNothingLeft(id: string): void {
      expect(processesMentioning(vmDirOf(root, id))).toEqual([]);
      expect(existsSync(vmDirOf(root, id))).toBe(false);
      expect(existsSync(join(root, id))).toBe(false);
      expect(processesMentioning(templateDir)).toEqual([]);
      // The clone's RAM file never has a name (template/start.ts).
      expect(readdirSync('/dev/shm').filter((n) => n.startsWith('kapsel-ram-'))).toEqual([]);
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(root);
    }

    it('starts a sandbox from the template it made: virtio-fs rootfs, a bind volume, exec; delete leaves only the template', async () => {
      const id = 'tpl-basic';
      ids.push(id);
      writeFileSync(join(work, 'in.txt'), 'from the host\n');
      const b = makeBundle((s) => {
        shSpec(s, 'cat /data/in.txt; echo from-guest > /data/out.txt; exec sleep 600');
        s.mounts = [
          ...(s.mounts ?? []),
          { destination: '/data', type: 'bind', source: work, options: ['rbind', 'rw'] },
        ];
      });
      const logFile = join(work, 'basic.log');
      const r = await kapselToFiles(
        ['--root', root, '--debug', '--log', logFile, 'run', '-d', '--bundle', b, id],
        work,
      );
      expect(r.stderr()).toBe('');
      expect(r.code).toBe(0);
      const t = lastTimeline(logFile);
      // Restored, not booted: no guest init ran in this VM.
      for (const mark of [
        'restoreBegun',
        'restored',
        'fsPlugged',
        'agentAnswered',
        'containerStarted',
      ]) {
        expect(t[mark], mark).toBeGreaterThan(0);
      }
      expect(t['initStarted']).toBeUndefined();
      const exec = await k('exec', id, 'sh', '-c', 'cat /data/out.txt; ls /bin/busybox');
      expect(exec.stderr).toBe('');
      expect(exec.stdout).toBe('from-guest\n/bin/busybox\n');
      expect(readFileSync(join(work, 'out.txt'), 'utf8')).toBe('from-guest\n');
      expect((await k('delete', '--force', id)).code).toBe(0);
      ids = [];
      expectNothingLeft(id);
      // The template stays, whole: the state and its description.
      const [key] = templates(templateDir);
      expect(key).toBeDefined();
      expect(existsSync(join(templateDir, key ?? '', 'state'))).toBe(true);
      const meta = JSON.parse(readFileSync(join(templateDir, key ?? '', 'meta.json'), 'utf8')) as {
        key: string;
      };
      expect(meta.key).toBe(key);
      expect(readdirSync(templateDir).filter((n) => n.endsWith('.lock'))).toEqual([]);
    });

    // Issue 11: the clone's RAM copy was a named file in /dev/shm from the
    // copy until QEMU had it open; a SIGKILL of the sandbox process in that
    // window left it there. It never has a name now (O_TMPFILE).
    it.each([
      ['as it starts', 'monitor.pid'],
      ['once QEMU runs', 'qemu.pid'],
    ])(
      'a SIGKILL of the sandbox process %s, then delete --force, leaves no /dev/shm file',
      async (_when, marker) => {
        const id = `tpl-kill-${marker.split('.')[0] ?? ''}`;
        ids.push(id);
        const shmBefore = readdirSync('/dev/shm');
        const seen = new Set<string>();
        const run = startKapsel(['--root', root, 'run', '-d', '-b', DEFAULT_BUNDLE, '--', id]);
        run.child.stdin.end();
        const ended = { yet: false };
        const done = run.done.then((r) => {
          ended.yet = true;
          return r;
        });
        const dir = vmDirOf(root, id);
        let killed = 0;
        while (!ended.yet && killed === 0) {
          for (const f of readdirSync('/dev/shm')) if (!shmBefore.includes(f)) seen.add(f);
          if (existsSync(join(dir, marker))) {
            killed = Number(readFileSync(join(dir, 'monitor.pid'), 'utf8'));
            if (killed > 0) process.kill(killed, 'SIGKILL');
          } else {
            await sleep(5);
          }
        }
        expect(killed).toBeGreaterThan(0);
        const r = await done;
        expect(r.code).toBe(1);
        expect((await k('delete', '--force', id)).code).toBe(0);
        ids = [];
        expectNothingLeft(id);
        expect([...seen]).toEqual([]);
        expect(readdirSync('/dev/shm').filter((f) => !shmBefore.includes(f))).toEqual([]);
      },
    );

    // A QEMU killed from outside while it loads the template says nothing
    // of the template: it was removed (and made again by the next start).
    it("a SIGKILL of the clone's QEMU during its restore fails that start and keeps the template", async () => {
      const id = 'tpl-kill-restore';
      ids.push(id);
      const [key] = templates(templateDir);
      expect(key).toBeDefined();
      const metaFile = join(templateDir, key ?? '', 'meta.json');
      const savedAt = (JSON.parse(readFileSync(metaFile, 'utf8')) as { savedAt: number }).savedAt;
      const run = startKapsel(['--root', root, 'run', '-d', '-b', DEFAULT_BUNDLE, '--', id]);
      run.child.stdin.end();
      const pidFile = join(vmDirOf(root, id), 'qemu.pid');
      let qemu = 0;
      while (qemu === 0) {
        qemu = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0;
        if (qemu === 0) await sleep(5);
      }
      process.kill(qemu, 'SIGKILL');
      const r = await run.done;
      // A fault, as a QEMU killed at any other moment of a start.
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`qemu (pid ${String(qemu)}) killed by SIGKILL`);
      // The sandbox process's log, kept with the failed VM's console.
      const kept = /logs are kept in (\S+)\/console\.log/.exec(r.stderr)?.[1] ?? '';
      expect(readFileSync(join(kept, 'monitor.log'), 'utf8')).toContain(
        'its QEMU was killed by SIGKILL; keeping it',
      );
      expect(templates(templateDir)).toEqual([key]);
      expect((JSON.parse(readFileSync(metaFile, 'utf8')) as { savedAt: number }).savedAt).toBe(
        savedAt,
      );
      expect((await k('delete', '--force', id)).code).toBe(0);
      ids = [];
      expectNothingLeft(id);
    });

    it('two sandboxes from one template draw different random bytes and boot ids, on the host clock', async () => {
      const b = makeBundle((s) => {
        shSpec(
          s,
          'echo "rnd=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d " \\n")"; echo "boot=$(cat /proc/sys/kernel/random/boot_id)"; echo "date=$(date +%s)"',
        );
      });
      const seen: { rnd: string; boot: string; skew: number }[] = [];
      for (const id of ['tpl-rng1', 'tpl-rng2']) {
        const r = await k('run', '--bundle', b, id);
        const after = Date.now() / 1000;
        expect(r.code, r.stderr).toBe(0);
        const v = new Map(
          r.stdout
            .trim()
            .split('\n')
            .map((l): [string, string] => [l.split('=')[0] ?? '', l.slice(l.indexOf('=') + 1)]),
        );
        // `date` ran before the VM was torn down: at most that long before now.
        seen.push({
          rnd: v.get('rnd') ?? '',
          boot: v.get('boot') ?? '',
          skew: after - Number(v.get('date')),
        });
      }
      const [a, c] = seen;
      expect(a?.rnd).toMatch(/^[0-9a-f]{64}$/);
      expect(a?.rnd).not.toBe(c?.rnd);
      expect(a?.boot).toMatch(/^[0-9a-f-]{36}$/);
      expect(a?.boot).not.toBe(c?.boot);
      for (const s of seen) {
        expect(s.skew).toBeGreaterThan(-3);
        expect(s.skew).toBeLessThan(30);
      }
      expect(templates(templateDir)).toHaveLength(1);
    });

    it('takes its network from a namespace path after the restore', async () => {
      const before = hostNetworkSnapshot();
      const podNs = TestNetns.create('kttpl');
      const peer = TestNetns.create('kttplp');
      try {
        peer.link(podNs, 'peer0', '10.252.0.1/24', 'eth0', '10.252.0.2/24');
        const id = 'tpl-net';
        ids.push(id);
        const b = makeBundle((s) => {
          shSpec(s, 'echo tpl-page > /tmp/index.html && exec httpd -f -p 80 -h /tmp');
          s.mounts = [...(s.mounts ?? []), { destination: '/tmp', type: 'tmpfs', source: 'tmpfs' }];
          const namespaces = (s.linux?.namespaces ?? []).filter((n) => n.type !== 'network');
          namespaces.push({ type: 'network', path: podNs.path });
          s.linux = { ...s.linux, namespaces };
        });
        const r = await kapselToFiles(['--root', root, 'run', '-d', '--bundle', b, id], work);
        expect(r.stderr()).toBe('');
        expect(r.code).toBe(0);
        expect(await peer.get('http://10.252.0.2/index.html')).toBe('tpl-page\n');
        expect((await k('delete', '--force', id)).code).toBe(0);
        ids = [];
        expectNothingLeft(id);
      } finally {
        podNs.remove();
        peer.remove();
      }
      expect(hostNetworkSnapshot()).toBe(before);
    });

    it('boots cold with KAPSEL_TEMPLATE=off', async () => {
      process.env['KAPSEL_TEMPLATE'] = 'off';
      const b = makeBundle((s) => {
        shSpec(s, 'true');
      });
      const logFile = join(work, 'off.log');
      const r = await kapselToFiles(
        ['--root', root, '--debug', '--log', logFile, 'run', '--bundle', b, 'tpl-off'],
        work,
      );
      expect(r.code, r.stderr()).toBe(0);
      const t = lastTimeline(logFile);
      expect(t['initStarted']).toBeGreaterThan(0);
      expect(t['restoreBegun']).toBeUndefined();
      expectNothingLeft('tpl-off');
    });

    it('remakes a template whose RAM file was truncated, with a warning, and starts from it', async () => {
      // Made by the first test of this file; truncated as a full disk or an
      // interrupted copy would leave it.
      const [key] = templates(templateDir);
      expect(key).toBeDefined();
      const ram = join(templateDir, key ?? '', 'ram');
      const saved = statSync(ram).size;
      truncateSync(ram, 4096);
      const id = 'tpl-damaged';
      ids.push(id);
      const b = makeBundle((s) => {
        shSpec(s, 'exec sleep 600');
      });
      const logFile = join(work, 'damaged.log');
      const r = await kapselToFiles(
        ['--root', root, '--debug', '--log', logFile, 'run', '-d', '--bundle', b, id],
        work,
      );
      expect(r.stderr()).toBe('');
      expect(r.code).toBe(0);
      // The sandbox process makes templates; its log is the VM's monitor.log.
      const log = readFileSync(vmDirLayout(vmDirOf(root, id)).log, 'utf8');
      const warning = log
        .split('\n')
        .find((l) => l.includes('VM template damaged; making it again'));
      // A warning: pino's level 40, or the text format's name.
      expect(warning, log).toMatch(/"level":40|level=warn/);
      expect(log).toContain(`${ram} has 4096 bytes, ${saved} were saved`);
      // Made again under the same key, and this start restored from it.
      expect(templates(templateDir)).toEqual([key]);
      expect(statSync(ram).size).toBe(saved);
      expect(lastTimeline(logFile)['restored']).toBeGreaterThan(0);
      expect((await k('delete', '--force', id)).code).toBe(0);
      ids = [];
      expectNothingLeft('tpl-damaged');
    });

    it('drops what a template maker SIGKILLed mid-make left, and two racing starts make one template', async () => {
      const dir = join(work, 'templates-killed');
      process.env['KAPSEL_TEMPLATE_DIR'] = dir;
      const b = makeBundle((s) => {
        shSpec(s, 'echo ok');
      });
      try {
        const first = startKapsel(['--root', root, 'run', '--bundle', b, 'tpl-killed'], work);
        // The process making the template names itself in its working directory.
        let maker: number | undefined;
        for (let i = 0; i < 1200 && maker === undefined; i++) {
          const made = existsSync(dir) ? readdirSync(dir) : [];
          const m = made.map((n) => /^\.make-[0-9a-f]{16}-(\d+)-/.exec(n)).find((x) => x !== null);
          if (m) maker = Number(m[1]);
          else await sleep(100);
        }
        expect(maker).toBeDefined();
        process.kill(maker ?? 0, 'SIGKILL');
        const killed = await first.done;
        expect(killed.code).not.toBe(0);
        await k('delete', '--force', 'tpl-killed');
        // Left behind: the working directory and the lock of a dead pid.
        expect(readdirSync(dir).some((n) => n.startsWith('.make-'))).toBe(true);
        expect(processesMentioning(dir)).toEqual([]);
        const racing = await Promise.all(
          ['tpl-race1', 'tpl-race2'].map((id) => k('run', '--bundle', b, id)),
        );
        for (const r of racing) {
          expect(r.stderr).toBe('');
          expect(r.stdout).toBe('ok\n');
          expect(r.code).toBe(0);
        }
        expect(templates(dir)).toHaveLength(1);
        expect(readdirSync(dir).filter((n) => !/^[0-9a-f]{16}$/.test(n))).toEqual([]);
        expectNothingLeft('tpl-race1');
        expectNothingLeft('tpl-race2');
      } finally {
        process.env['KAPSEL_TEMPLATE_DIR'] = templateDir;
      }
    });

    it('makes a new template when a file of its key changes, and drops the stale one', async () => {
      const dir = join(work, 'templates-kernel');
      process.env['KAPSEL_TEMPLATE_DIR'] = dir;
      const kernel = join(work, 'vmlinux');
      copyFileSync(
        existsSync(join(GUEST_DIR, 'vmlinux'))
          ? join(GUEST_DIR, 'vmlinux')
          : join(GUEST_DIR, 'vmlinuz'),
        kernel,
      );
      process.env['KAPSEL_KERNEL'] = kernel;
      const b = makeBundle((s) => {
        shSpec(s, 'true');
      });
      try {
        expect((await k('run', '--bundle', b, 'tpl-key1')).code).toBe(0);
        const first = templates(dir);
        expect(first).toHaveLength(1);
        // As a rebuild of the guest kernel would: same path, new mtime.
        const later = new Date(Date.now() + 60_000);
        utimesSync(kernel, later, later);
        expect((await k('run', '--bundle', b, 'tpl-key2')).code).toBe(0);
        const second = templates(dir);
        expect(second).toHaveLength(1);
        expect(second[0]).not.toBe(first[0]);
        expectNothingLeft('tpl-key2');
      } finally {
        process.env['KAPSEL_TEMPLATE_DIR'] = templateDir;
      }
    });
  },
);
