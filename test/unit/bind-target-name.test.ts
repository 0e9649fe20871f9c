import { mkdtempSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bindTargetName, hostIdOfRoot } from '../../runtime/src/container/guest-spec.js';

describe('host-side names of a container in the share', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kapsel-names-'));
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('names a bind target after its source, symlinks resolved as mount(2) resolves them', async () => {
    mkdirSync(join(dir, 'etc'));
    symlinkSync(join(dir, 'etc'), join(dir, 'link'));
    expect(await bindTargetName(join(dir, 'etc'))).toBe('etc');
    expect(await bindTargetName(`${join(dir, 'etc')}/`)).toBe('etc');
    expect(await bindTargetName(join(dir, 'link'))).toBe('etc');
    expect(await bindTargetName('/')).toBe('root');
    // A missing source keeps its own name; bindMount reports it.
    expect(await bindTargetName(join(dir, 'missing'))).toBe('missing');
  });

  it.each([
    [undefined, 0],
    [[], 0],
    [[{ containerID: 0, hostID: 1000, size: 65536 }], 1000],
    [
      [
        { containerID: 1, hostID: 200000, size: 10 },
        { containerID: 0, hostID: 100000, size: 1 },
      ],
      100000,
    ],
    [[{ containerID: 1000, hostID: 5000, size: 1 }], 5000],
  ])('the host id of container root for mappings %j is %i', (mappings, want) => {
    expect(hostIdOfRoot(mappings)).toBe(want);
  });
});
