import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Supervisor } from '../../runtime/src/sandbox/supervisor.js';
import { Child } from '../../runtime/src/sandbox/vm/child.js';

// The one watch over a sandbox's host processes, on real child processes:
// the stop reason names the process, how it ended, and what it said as it
// ended, but not the chatter it wrote long before (virtiofsd's boot lines
// when its sandboxed child is killed and it exits 1 without a word).

describe('the supervisor of a sandbox host processes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kapsel-supervisor-'));
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  async function deathOf(name: string, script: string): Promise<string> {
    const pids = join(dir, `${name}.json`);
    let reason = '';
    const told = new Promise<void>((resolve) => {
      const s = new Supervisor(pids, (r) => {
        reason = r;
        resolve();
      });
      void Child.start('sh', ['-c', script]).then((child) => {
        s.adopt(name, child);
        expect(JSON.parse(readFileSync(pids, 'utf8'))).toEqual([{ name, pid: child.pid }]);
      });
    });
    await told;
    return reason;
  }

  it('gives the line a process wrote as it exited', async () => {
    expect(await deathOf('boom', 'echo "fatal: no such socket" >&2; exit 3')).toMatch(
      /^boom \(pid \d+\) exit status 3: fatal: no such socket$/,
    );
  });

  it('leaves out a line written long before a silent exit', async () => {
    expect(await deathOf('quiet', 'echo "started queue 0" >&2; sleep 2; exit 1')).toMatch(
      /^quiet \(pid \d+\) exit status 1$/,
    );
  });

  it('names the signal of a kill, without its last words', async () => {
    expect(await deathOf('killed', 'echo "serving" >&2; kill -9 $$')).toMatch(
      /^killed \(pid \d+\) killed by SIGKILL$/,
    );
  });
});
