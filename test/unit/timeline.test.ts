import { describe, expect, it } from 'vitest';
import { Timeline, markGuestPhase } from '../../runtime/src/sandbox/vm/timeline.js';

// The lines native/init/init.c and the agent print, as the console sees them.
const CONSOLE = [
  'kapsel-init: started',
  'kapsel-init: kernel booted in 3.91 s',
  'kapsel-init: loaded 19 kernel modules (4.38 s after boot)',
  'kapsel-init: mounted the guest image /dev/pmem0 on /.kapsel-image (4.52 s after boot)',
  'kapsel-init: started agent /usr/bin/node /opt/kapsel/agent.mjs (pid 84, 4.50 s after boot)',
  '{"level":30,"pid":84,"name":"kapsel-agent","port":"/dev/vport0p1","msg":"agent serving on virtio-serial port"}',
];

describe('boot timeline', () => {
  it('marks each phase of the guest start from its console line, in order', () => {
    const t = new Timeline(0n);
    CONSOLE.forEach((line, i) => {
      markGuestPhase(t, line, BigInt((i + 1) * 1_000_000));
    });
    expect(Object.keys(t.toJSON())).toEqual([
      'initStarted',
      'modulesLoaded',
      'imageMounted',
      'agentExec',
      'agentServing',
    ]);
    expect(t.ms('initStarted')).toBe(1);
    expect(t.report().guest).toEqual({
      'initStarted@guest': 3910,
      'modulesLoaded@guest': 4380,
      'imageMounted@guest': 4520,
      'agentExec@guest': 4500,
    });
  });

  it('ignores lines that announce no phase', () => {
    const t = new Timeline(0n);
    markGuestPhase(t, 'Linux version 6.1.0', 5n);
    expect(t.toJSON()).toEqual({});
  });
});
