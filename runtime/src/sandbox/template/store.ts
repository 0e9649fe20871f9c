import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { VmConfig } from '../vm/config.js';
import { vmDirLayout } from '../vm-dir.js';
import { saveState } from '../vm/migration.js';
import { Vm } from '../vm/index.js';
import { templateKey, type TemplateKey } from './key.js';
import { alive, PidLock } from './lock.js';
import { templateLayout, type TemplateLayout } from './settings.js';
import { mkdirAll } from '../../../../oci/fs/mkdir-all.js';

/** How long a start waits for another process making the same template. */
const LOCK_WAIT_MS = 15 * 60_000;

/** meta.json of a template. */
export interface TemplateMeta {
  key: string;
  shapeKey: string;
  args: string[];
  files: Record<string, string>;
  /** When it was saved, ms since the epoch. */
  savedAt: number;
  /** The template's boot to its saved state, ms (its boot timeline). */
  timeline: Record<string, number>;
  /** Sizes of `state` and `ram` as saved: a file of another size is damaged. */
  stateBytes: number;
  ramBytes: number;
}

export interface ReadyTemplate {
  key: string;
  layout: TemplateLayout;
  /** True if this call made it (the caller paid a boot). */
  made: boolean;
}

/**
 * The template for VMs of `cfg`'s shape (its share ignored), made on first
 * use: returns at once when `<root>/<key>/` exists, else takes the key's
 * lock (another process making it is waited for), boots the template VM,
 * saves it and publishes it with one rename. When a template is made, the
 * older ones of the same shape (made from files since rebuilt) are removed,
 * and so are the working directories of makers that died. A template whose
 * files do not match its meta.json (templateDamage) is removed, with a
 * warning, and made again.
 */
export async function ensureTemplate(
  root: string,
  cfg: VmConfig,
  qemuBinary: string,
  log: Logger,
  signal?: AbortSignal,
): Promise<ReadyTemplate> {
  if (cfg.accel === undefined)
    throw new Error('ensure a template: the accelerator must be decided');
  const key = await templateKey(cfg, cfg.accel, qemuBinary);
  const layout = templateLayout(root, key.key);
  const exists = (): Promise<boolean> =>
    stat(layout.state).then(
      () => true,
      () => false,
    );
  if (await exists()) {
    const damage = await templateDamage(layout);
    if (damage === undefined) return { key: key.key, layout, made: false };
    log.warn({ key: key.key, dir: layout.dir, damage }, 'VM template damaged; making it again');
    await discardTemplate(root, key.key);
  }
  await mkdirAll(root, 0o700);
  const lock = await PidLock.acquire(`${layout.dir}.lock`, exists, {
    timeoutMs: LOCK_WAIT_MS,
    ...(signal === undefined ? {} : { signal }),
  });
  if (lock === undefined) return { key: key.key, layout, made: false };
  try {
    if (await exists()) return { key: key.key, layout, made: false };
    await dropOrphans(root, log);
    await makeTemplate(root, cfg, key, log, signal);
    await pruneStale(root, key, log);
    return { key: key.key, layout, made: true };
  } finally {
    await lock.release();
  }
}

/**
 * Boots the template in a private directory next to its final place, waits
 * for the agent to serve its port, saves the stopped VM and renames the
 * directory into place. The host never connects to the template's agent:
 * a write the agent makes after the host hung up (its HTTP/2 GOAWAY
 * answering the client's) blocks in the guest's virtio-serial driver until
 * a host connects again, which would be the first clone's connection,
 * whose HTTP/2 client then reads a GOAWAY before SETTINGS and fails with a
 * protocol error (seen here). So the agent is saved never having had a
 * host; the clone's first call is its first connection. (The agent now
 * drops such writes, agent/src/transport/serial.ts; never connecting stays
 * the simpler path.)
 */
async function makeTemplate(
  root: string,
  cfg: VmConfig,
  key: TemplateKey,
  log: Logger,
  signal?: AbortSignal,
): Promise<void> {
  const work = join(root, `.make-${key.key}-${process.pid}-${randomBytes(3).toString('hex')}`);
  const layout = templateLayout(root, key.key);
  const draft = templateLayout(work, '');
  log.info({ key: key.key, dir: layout.dir }, 'making a VM template');
  await mkdir(work, { mode: 0o700 });
  try {
    const shape: VmConfig = {
      ...cfg,
      stateDir: work,
      template: { role: 'save', ramFile: draft.ram },
    };
    delete shape.share;
    const vm = await Vm.boot(shape, log, signal === undefined ? {} : { signal });
    try {
      await vm.waitAgentReady(signal);
      await vm.console.waitFor(/"msg":"agent serving on virtio-serial port"/, {
        includeTail: true,
        signal: AbortSignal.any([AbortSignal.timeout(60_000), ...(signal ? [signal] : [])]),
      });
      await saveState(vm.qmp, draft.state, signal);
      vm.timeline.mark('saved');
    } finally {
      await vm.shutdown(0);
    }
    const stateBytes = (await stat(draft.state)).size;
    const ramBytes = (await stat(draft.ram)).size;
    const meta: TemplateMeta = {
      key: key.key,
      shapeKey: key.shapeKey,
      args: key.args,
      files: key.files,
      savedAt: Date.now(),
      timeline: vm.timeline.toJSON(),
      stateBytes,
      ramBytes,
    };
    await writeFile(draft.meta, `${JSON.stringify(meta, null, 2)}\n`);
    await rm(join(work, 'timeline.json'), { force: true });
    // Published whole or not at all: a reader sees the state file only in
    // a directory that has everything.
    try {
      await rename(work, layout.dir);
    } catch (err) {
      // Two makers that took over a dead owner's lock at once (lock.ts):
      // the other one published first. Its template is as good as this one.
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || !existsSync(layout.state)) throw err;
      await rm(work, { recursive: true, force: true });
      log.info({ key: key.key }, 'VM template made by another process meanwhile; using that one');
      return;
    }
    log.info({ key: key.key, stateBytes, timeline: meta.timeline }, 'VM template saved');
  } catch (err) {
    // The template's boot is the one this start waited for: its console
    // goes where the start's VM keeps its own, so a failed start's kept
    // logs (boot-logs.ts) show why the guest did not come up.
    await copyFile(draft.console, vmDirLayout(cfg.stateDir).console).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
    throw new Error(`make the VM template ${layout.dir}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * Why the template in `layout` cannot be used, or undefined if it can: its
 * meta.json unreadable, or `state` or `ram` missing or of another size than
 * when saved (a truncated copy, a disk that filled up). A file of the right
 * size with wrong bytes is caught later, when QEMU loads the state or the
 * restored agent does not answer (start.ts removes the template then).
 */
export async function templateDamage(layout: TemplateLayout): Promise<string | undefined> {
  let meta: Partial<TemplateMeta>;
  try {
    meta = JSON.parse(await readFile(layout.meta, 'utf8')) as Partial<TemplateMeta>;
  } catch (err) {
    return `read ${layout.meta}: ${(err as Error).message}`;
  }
  const files: [string, number | undefined][] = [
    [layout.state, meta.stateBytes],
    [layout.ram, meta.ramBytes],
  ];
  for (const [path, want] of files) {
    const size = await stat(path).then(
      (st) => st.size,
      () => undefined,
    );
    if (size === undefined) return `${path} is missing`;
    if (size !== want) return `${path} has ${size} bytes, ${String(want)} were saved`;
  }
  return undefined;
}

/**
 * The directories a template maker leaves while it works (`.make-<key>-<pid>-*`)
 * and while it removes one (`.stale-<key>-<pid>`, `.bad-<key>-<pid>`), whose
 * pid is dead: a kapsel SIGKILLed mid-save or mid-remove. Its QEMU died with
 * it (pdeathsig, vm/child.ts), so nothing uses them.
 */
const WORK_DIR = /^\.(?:make-[0-9a-f]{16}-(\d+)-[0-9a-f]+|(?:stale|bad)-[0-9a-f]{16}-(\d+))$/;

/** Removes the working directories of template makers that died (WORK_DIR). */
export async function dropOrphans(root: string, log: Logger): Promise<void> {
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const m = WORK_DIR.exec(name);
    const pid = Number(m?.[1] ?? m?.[2]);
    if (m === null || !Number.isInteger(pid) || pid <= 0 || alive(pid)) continue;
    await rm(join(root, name), { recursive: true, force: true });
    log.info({ dir: join(root, name) }, 'removed what a dead template maker left');
  }
}

/** Removes templates of the same shape made from files that have changed since. */
async function pruneStale(root: string, key: TemplateKey, log: Logger): Promise<void> {
  for (const name of await readdir(root).catch(() => [] as string[])) {
    if (name === key.key || !/^[0-9a-f]{16}$/.test(name)) continue;
    const other = templateLayout(root, name);
    const meta = await readFile(other.meta, 'utf8')
      .then((t) => JSON.parse(t) as Partial<TemplateMeta>)
      .catch(() => undefined);
    if (meta?.shapeKey !== key.shapeKey) continue;
    // Renamed first, so a clone reading it either has it open or never sees it.
    const doomed = join(root, `.stale-${name}-${process.pid}`);
    await rename(other.dir, doomed)
      .then(() => rm(doomed, { recursive: true, force: true }))
      .then(
        () => {
          log.info({ key: name }, 'removed a stale VM template');
        },
        () => undefined,
      );
  }
}

/** Removes a template that failed to restore, so the next start makes it again. */
export async function discardTemplate(root: string, key: string): Promise<void> {
  const doomed = join(root, `.bad-${key}-${process.pid}`);
  await rename(templateLayout(root, key).dir, doomed).catch(() => undefined);
  await rm(doomed, { recursive: true, force: true });
}
