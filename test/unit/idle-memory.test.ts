import { getHeapSpaceStatistics } from 'node:v8';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import {
  IdleMemory,
  M_ARENA_MAX,
  M_MMAP_THRESHOLD,
  M_TRIM_THRESHOLD,
  type Malloc,
} from '../../oci/process/idle-memory.js';
import { hostMalloc } from '../../runtime/src/sys/host-native.js';

/** V8's old space: bytes it holds, and bytes its live objects take. */
function oldSpace(): { size: number; used: number } {
  const s = getHeapSpaceStatistics().find((x) => x.space_name === 'old_space');
  if (s === undefined) throw new Error('no old_space in v8.getHeapSpaceStatistics()');
  return { size: s.space_size, used: s.space_used_size };
}

describe('IdleMemory (oci/process/idle-memory.ts)', () => {
  it('fixes the arenas and thresholds of malloc, then after a burst compacts the old space and trims once idle', async () => {
    // The real libc calls, recorded in order.
    const calls: string[] = [];
    const malloc: Malloc = {
      trim: () => {
        calls.push('trim');
        hostMalloc.trim();
      },
      mallopt: (param, value) => {
        calls.push(`mallopt ${param} ${value}`);
        hostMalloc.mallopt(param, value);
      },
    };
    const idle = new IdleMemory(malloc, pino({ level: 'silent' }));
    // glibc accepted each (hostMalloc throws on a refusal).
    expect(calls).toEqual([
      `mallopt ${M_ARENA_MAX} 1`,
      `mallopt ${M_MMAP_THRESHOLD} ${128 * 1024}`,
      `mallopt ${M_TRIM_THRESHOLD} ${128 * 1024}`,
    ]);

    // A burst that leaves the old space fragmented, as a soak's calls do:
    // many objects promoted, 1 in 100 still alive.
    const kept: object[][] = [];
    for (let round = 0; round < 60; round++) {
      const all: object[] = [];
      for (let i = 0; i < 20_000; i++) all.push({ i, s: `x${i}` });
      kept.push(all.filter((_, i) => i % 100 === 0));
    }
    idle.callDone();
    while (!calls.includes('trim')) await sleep(100);

    // Without compaction the collections free the objects but keep their
    // pages: the old space stayed ~1 MB above its live objects.
    const { size, used } = oldSpace();
    expect(size - used).toBeLessThan(512 * 1024);
    expect(kept.length).toBe(60);
  });
});
