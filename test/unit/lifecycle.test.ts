import { describe, expect, it } from 'vitest';
import {
  canDelete,
  canExec,
  canInspect,
  canKill,
  canPause,
  canResume,
  canStart,
  type Status,
} from '../../runtime/src/container/lifecycle.js';
import { parseInterval } from '../../runtime/src/args/duration.js';
import { resourcesOf } from '../../runtime/src/args/update-flags.js';
import { placementOf } from '../../runtime/src/container/pod.js';

const ALL: Status[] = ['creating', 'created', 'running', 'paused', 'stopped'];

/** Expected refusal per status (undefined: allowed), with runc's texts. */
const TABLE: [string, (s: Status) => string | undefined, Partial<Record<Status, string>>][] = [
  [
    'start',
    canStart,
    {
      creating: 'cannot start a container in the creating state',
      running: 'cannot start an already running container',
      paused: 'cannot start a container in the paused state',
      stopped: 'cannot start a container that has stopped',
    },
  ],
  ['kill', canKill, { creating: 'container not running', stopped: 'container not running' }],
  [
    'delete',
    (s) => canDelete(s, false, 'c1'),
    {
      creating: 'cannot delete container c1 that is not stopped: creating',
      running: 'cannot delete container c1 that is not stopped: running',
      paused: 'cannot delete container c1 that is not stopped: paused',
    },
  ],
  ['delete --force', (s) => canDelete(s, true, 'c1'), {}],
  [
    'exec',
    canExec,
    {
      creating: 'cannot exec in a container that has not been started',
      created: 'cannot exec in a container that has not been started',
      paused: 'cannot exec in a paused container',
      stopped: 'cannot exec in a stopped container',
    },
  ],
  [
    'pause',
    canPause,
    {
      creating: 'container not running',
      paused: 'container not running',
      stopped: 'container not running',
    },
  ],
  [
    'resume',
    canResume,
    {
      creating: 'container not paused',
      created: 'container not paused',
      running: 'container not paused',
      stopped: 'container not paused',
    },
  ],
  [
    'ps/update/events',
    canInspect,
    { creating: 'container not running', stopped: 'container not running' },
  ],
];

describe('lifecycle legality', () => {
  for (const [verb, check, refusals] of TABLE) {
    it.each(ALL)(`${verb} in state %s`, (status) => {
      expect(check(status)).toBe(refusals[status]);
    });
  }
});

describe('pod placement from CRI annotations', () => {
  it.each<[string, Record<string, string>, ReturnType<typeof placementOf>]>([
    ['no annotations: its own VM', {}, { sandboxId: 'c1', ownsSandbox: true }],
    [
      'containerd sandbox',
      { 'io.kubernetes.cri.container-type': 'sandbox', 'io.kubernetes.cri.sandbox-id': 'c1' },
      { sandboxId: 'c1', ownsSandbox: true },
    ],
    [
      'containerd container',
      { 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': 'pod' },
      { sandboxId: 'pod', ownsSandbox: false },
    ],
    [
      'CRI-O container',
      { 'io.kubernetes.cri-o.ContainerType': 'container', 'io.kubernetes.cri-o.SandboxID': 'pod' },
      { sandboxId: 'pod', ownsSandbox: false },
    ],
    [
      'container without a sandbox id',
      { 'io.kubernetes.cri.container-type': 'container' },
      { sandboxId: 'c1', ownsSandbox: true },
    ],
  ])('%s', (_name, annotations, want) => {
    expect(placementOf('c1', annotations)).toEqual(want);
  });
});

describe('update flags', () => {
  it('turns runc update flags into linux.resources', async () => {
    expect(
      await resourcesOf({ memory: '64m', pidsLimit: '10', cpuQuota: '50000', cpuPeriod: '100000' }),
    ).toEqual({
      memory: { limit: 64 * 1024 * 1024 },
      pids: { limit: 10 },
      cpu: { quota: 50000, period: 100000 },
    });
  });

  it.each([
    [{ memory: 'lots' }, 'invalid value for --memory: lots'],
    [{ pidsLimit: '1.5' }, 'invalid value for --pids-limit: 1.5'],
  ])('refuses %j naming the flag', async (flags, text) => {
    await expect(resourcesOf(flags)).rejects.toThrow(text);
  });

  it('parses event intervals as Go durations', () => {
    expect(parseInterval('5s')).toBe(5000);
    expect(parseInterval('250ms')).toBe(250);
    expect(() => parseInterval('5')).toThrow('invalid --interval');
  });
});
