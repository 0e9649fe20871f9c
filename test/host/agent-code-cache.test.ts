// The guest's agent start (agent/src/boot/code-cache.ts), run standalone on
// this host from the same files rootfs/build.sh puts in the image: the
// CommonJS bundle, its boot loader, and a V8 code cache the loader makes.
// What the guest shows as codeCache in its "agent serving" line
// (test/vm/light.test.ts checks "accepted" there) and the fallbacks: a
// cache V8 refuses (made under other V8 flags, as one from another node
// binary would be) or none at all still give a working agent.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../runtime/src/sandbox/agent-client.js';
import { isRoot } from '../support/agent-process.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DIST = join(ROOT, 'build/dist');
const LIB = join(ROOT, 'build/native/libkapsel.so');

function missing(): string | undefined {
  if (!isRoot) return 'needs root (the agent runs standalone)';
  for (const f of [join(DIST, 'agent.cjs'), join(DIST, 'agent-boot.cjs'), LIB]) {
    if (!existsSync(f)) return `${f} missing (npm run build:ts; make -C native)`;
  }
  return undefined;
}
const skip = missing();

const env = {
  ...process.env,
  KAPSEL_NATIVE_LIB: LIB,
  // The agent's own cgroups are not what this is about; leave the host's alone.
  KAPSEL_CGROUP_ROOT: '/nonexistent',
  NODE_PATH: join(ROOT, 'node_modules'),
};

/** Runs the boot loader with `flags` until it serves; its serving line and a Check. */
async function startAgent(dir: string, flags: string[] = []): Promise<Record<string, unknown>> {
  const sock = join(dir, `agent-${Date.now()}.sock`);
  const child = spawn(
    process.execPath,
    [...flags, join(dir, 'agent-boot.cjs'), '--listen', `unix:${sock}`],
    { env, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  const serving = new Promise<Record<string, unknown>>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      const line = err.split('\n').find((l) => l.includes('agent serving on unix socket'));
      if (line !== undefined) resolve(JSON.parse(line) as Record<string, unknown>);
    });
    child.once('exit', (code) => {
      reject(new Error(`agent exited (${code}) before serving:\n${err}`));
    });
  });
  try {
    const facts = await serving;
    const client = AgentClient.forSocket(sock);
    try {
      await client.check();
    } finally {
      client.close();
    }
    return facts;
  } finally {
    child.kill('SIGKILL');
  }
}

function produce(dir: string, flags: string[] = []): void {
  const r = spawnSync(
    process.execPath,
    [
      ...flags,
      join(dir, 'agent-boot.cjs'),
      '--produce-code-cache',
      join(dir, 'agent.cjs.cache'),
      '--listen',
      `unix:${join(dir, 'produce.sock')}`,
    ],
    { env, encoding: 'utf8' },
  );
  expect(r.status, r.stderr).toBe(0);
}

describe.skipIf(skip !== undefined)(
  `agent start from a V8 code cache${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'kapsel-code-cache-'));
    for (const f of ['agent.cjs', 'agent-boot.cjs']) copyFileSync(join(DIST, f), join(dir, f));
    afterAll(() => {
      rmSync(dir, { recursive: true, force: true });
    });

    it('without a cache the agent compiles from source and serves', async () => {
      expect((await startAgent(dir))['codeCache']).toBe('missing');
    });

    it('a cache made as rootfs/build.sh makes it is accepted', async () => {
      produce(dir);
      expect(statSync(join(dir, 'agent.cjs.cache')).size).toBeGreaterThan(100_000);
      expect((await startAgent(dir))['codeCache']).toBe('accepted');
    });

    it('a cache made under other V8 flags is refused and the agent still serves', async () => {
      produce(dir, ['--max-semi-space-size=2']);
      expect((await startAgent(dir))['codeCache']).toBe('rejected');
      // ... and the same cache is taken under the flags it was made with.
      expect((await startAgent(dir, ['--max-semi-space-size=2']))['codeCache']).toBe('accepted');
    });
  },
);
