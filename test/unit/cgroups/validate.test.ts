import { describe, expect, it } from 'vitest';
import type { HostLimits } from '../../../agent/src/cgroups/types.js';
import { validateResources } from '../../../agent/src/cgroups/validate.js';
import { AgentError } from '../../../agent/src/errors.js';

/** A 1-vCPU guest, as kapsel boots by default. */
const ONE_CPU: HostLimits = { cpus: [0], mems: [0] };

describe('validateResources', () => {
  it('accepts what runc accepts and keeps what it applies', () => {
    expect(
      validateResources(
        {
          memory: { limit: 67108864, reservation: 1048576, swap: -1, swappiness: 60 },
          cpu: { shares: 1024, quota: 50000, period: 100000, cpus: '0', mems: '0' },
          pids: { limit: 20 },
          blockIO: { weight: 500, throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1048576 }] },
          hugepageLimits: [{ pageSize: '2MB', limit: 0 }],
          unified: { 'memory.high': '50000000' },
          devices: [
            { allow: false, access: 'rwm' },
            { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' },
          ],
        },
        ONE_CPU,
      ),
    ).toEqual({
      memory: { limit: 67108864, reservation: 1048576, swap: -1 },
      cpu: { shares: 1024, quota: 50000, period: 100000, cpus: '0', mems: '0' },
      pids: { limit: 20 },
      blockIO: { weight: 500, throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1048576 }] },
      hugepageLimits: [{ pageSize: '2MB', limit: 0 }],
      unified: { 'memory.high': '50000000' },
      devices: [
        { allow: false, access: 'rwm' },
        { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' },
      ],
    });
    expect(validateResources(undefined, ONE_CPU)).toEqual({});
  });

  const refusals: [string, unknown, string][] = [
    [
      'negative memory limit',
      { memory: { limit: -5 } },
      'linux.resources.memory.limit: must be -1 (unlimited) or >= 0, got -5',
    ],
    ['negative reservation', { memory: { reservation: -2 } }, 'linux.resources.memory.reservation'],
    [
      'swap below memory',
      { memory: { limit: 100, swap: 50 } },
      'linux.resources.memory.swap: memory+swap (50) must be >= memory.limit (100)',
    ],
    [
      'swap without memory',
      { memory: { swap: 50 } },
      'linux.resources.memory.swap: a swap limit needs a memory limit',
    ],
    [
      'non-integer limit',
      { memory: { limit: '64m' } },
      'linux.resources.memory.limit: must be an integer',
    ],
    [
      'cpus beyond the guest',
      { cpu: { cpus: '0-999' } },
      'linux.resources.cpu.cpus: "0-999" names CPUs the guest does not have (it has 0)',
    ],
    ['bad cpu list', { cpu: { cpus: '0-a' } }, 'linux.resources.cpu.cpus: "0-a" is not a cpu list'],
    ['mems beyond the guest', { cpu: { mems: '1' } }, 'linux.resources.cpu.mems'],
    [
      'period under 1 ms',
      { cpu: { quota: 50000, period: 10 } },
      'linux.resources.cpu.period: must be between 1000 and 1000000',
    ],
    [
      'negative quota',
      { cpu: { quota: -7 } },
      'linux.resources.cpu.quota: must be -1 (unlimited) or >= 0, got -7',
    ],
    ['quota under 1 ms', { cpu: { quota: 10 } }, 'linux.resources.cpu.quota: must be >= 1000'],
    [
      'shares too large',
      { cpu: { shares: 262145 } },
      'linux.resources.cpu.shares: must be <= 262144',
    ],
    [
      'negative pids',
      { pids: { limit: -3 } },
      'linux.resources.pids.limit: must be -1 (unlimited) or >= 0, got -3',
    ],
    ['pids without limit', { pids: {} }, 'linux.resources.pids.limit: must be an integer'],
    [
      'blkio weight low',
      { blockIO: { weight: 5 } },
      'linux.resources.blockIO.weight: must be between 10 and 1000',
    ],
    [
      'negative throttle',
      { blockIO: { throttleWriteIOPSDevice: [{ major: 8, minor: 0, rate: -1 }] } },
      'linux.resources.blockIO.throttleWriteIOPSDevice[0].rate',
    ],
    [
      'bad page size',
      { hugepageLimits: [{ pageSize: '2M', limit: 1 }] },
      'linux.resources.hugepageLimits[0].pageSize',
    ],
    [
      'unified path escape',
      { unified: { '../memory.max': '1' } },
      'linux.resources.unified["../memory.max"]: not a cgroup file name',
    ],
    [
      'unified reserved',
      { unified: { 'cgroup.procs': '1' } },
      'linux.resources.unified["cgroup.procs"]: managed by the agent',
    ],
    ['device type', { devices: [{ allow: true, type: 'x' }] }, 'linux.resources.devices[0].type'],
    [
      'device access',
      { devices: [{ allow: true, access: 'rx' }] },
      'linux.resources.devices[0].access',
    ],
    [
      'device without allow',
      { devices: [{ access: 'r' }] },
      'linux.resources.devices[0].allow: must be a boolean',
    ],
    ['unknown field', { memroy: {} }, 'linux.resources.memroy: unknown field'],
    ['not an object', [], 'linux.resources: must be an object'],
  ];
  it.each(refusals)('refuses %s naming the field', (_name, value, errorContains) => {
    let caught: unknown;
    try {
      validateResources(value, ONE_CPU);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(AgentError);
    expect((caught as AgentError).kind).toBe('invalid-argument');
    expect((caught as AgentError).message).toContain(errorContains);
  });
});
