// The memory accounting of bench/pods.ts against a real process: a VM
// clone's RAM is an O_TMPFILE in /dev/shm that cp filled and QEMU maps
// shared (template/start.ts); here python3 plays both, so the counts can be
// checked against the pages it wrote and touched.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mappingPssKiB, ramFilesKiB } from '../../bench/pss.js';

const MiB = 1024;
const PYTHON = `
import mmap, os, sys
fd = os.open('/dev/shm', os.O_TMPFILE | os.O_RDWR, 0o600)
os.ftruncate(fd, 64 << 20)
# 8 MiB written through the file, as cp does, never mapped.
os.pwrite(fd, b'x' * (8 << 20), 0)
ram = mmap.mmap(fd, 64 << 20, mmap.MAP_SHARED)
# 2 MiB the "guest" writes after the copy, elsewhere in the file.
for off in range(32 << 20, 34 << 20, 4096): ram[off] = 1
# A writable, executable private mapping, as TCG's translation buffer: 4 MiB touched.
tb = mmap.mmap(-1, 16 << 20, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
for off in range(0, 4 << 20, 4096): tb[off] = 1
print('ready', flush=True)
sys.stdin.read()
`;

const python = spawnSync('python3', ['-c', 'import os; os.O_TMPFILE'], { encoding: 'utf8' });
const skip =
  python.status === 0
    ? false
    : `python3 with os.O_TMPFILE is needed (${python.stderr || 'not found'})`;

describe.skipIf(skip !== false)('bench/pss.ts accounting of a guest RAM file', () => {
  let child: ChildProcess;
  beforeAll(async () => {
    child = spawn('python3', ['-c', PYTHON], { stdio: ['pipe', 'pipe', 'inherit'] });
    const [line] = (await once(child.stdout ?? child, 'data')) as [Buffer];
    expect(line.toString()).toContain('ready');
  });
  afterAll(() => {
    child.stdin?.end();
  });

  it('counts the file by its blocks: pages written and never mapped too', () => {
    const files = [...ramFilesKiB(child.pid ?? 0).values()];
    expect(files).toEqual([10 * MiB]);
  });

  it('splits the process by mapping: RAM touched, the executable buffer, the rest', () => {
    const m = mappingPssKiB(child.pid ?? 0);
    expect(m.ram).toBe(2 * MiB);
    expect(m.tcg).toBe(4 * MiB);
    expect(m.file).toBeGreaterThan(0);
    expect(m.anon).toBeGreaterThan(0);
  });
});
