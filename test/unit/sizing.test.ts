import { describe, expect, it } from 'vitest';
import type { Spec } from '../../oci/spec.js';
import { DEFAULT_SIZING, sandboxSize, sizingOf } from '../../runtime/src/sandbox/sizing.js';

const GiB = 1024 ** 3;
const spec = (resources?: NonNullable<Spec['linux']>['resources']): Spec => ({
  ociVersion: '1.2.0',
  linux: resources === undefined ? {} : { resources },
});

describe('sandbox sizing', () => {
  it('gives a container with 2 GiB a guest of base + 2 GiB', () => {
    expect(sandboxSize([spec({ memory: { limit: 2 * GiB } })])).toEqual({
      memoryMiB: 1024 + 2048,
      cpus: 1,
    });
  });

  it('keeps the base for containers without limits or with -1', () => {
    expect(sandboxSize([spec(), spec({ memory: { limit: -1 } })])).toEqual({
      memoryMiB: 1024,
      cpus: 1,
    });
  });

  it('sums the containers of a pod and adds vCPUs for their quotas, capped', () => {
    const pod = [
      spec({ memory: { limit: 100 * 1024 * 1024 + 1 }, cpu: { quota: 150000, period: 100000 } }),
      spec({ memory: { limit: 512 * 1024 * 1024 }, cpu: { quota: 50000 } }),
    ];
    expect(sandboxSize(pod, { ...DEFAULT_SIZING, maxCpus: 8 })).toEqual({
      memoryMiB: 1024 + 101 + 512,
      cpus: 3,
    });
    expect(sandboxSize(pod, { ...DEFAULT_SIZING, maxCpus: 2 }).cpus).toBe(2);
  });

  it('takes the configured base, and the host CPUs when default_maxvcpus is 0', () => {
    const hv = { default_memory: 384, default_vcpus: 1, default_maxvcpus: 0 };
    expect(sizingOf(hv, 4)).toEqual({ baseMemoryMiB: 384, baseCpus: 1, maxCpus: 4 });
    expect(sizingOf({ ...hv, default_maxvcpus: 2 }, 4).maxCpus).toBe(2);
  });
});
