import { describe, expect, it } from 'vitest';
import { guestFault } from '../../runtime/src/sandbox/vm/guest-fault.js';

// Lines as the 6.1 guest kernel and our init print them (seen in the fault
// suite's console logs, test/vm/faults.test.ts).
describe('guestFault: why a guest died, from its console', () => {
  it.each([
    [
      ['[ 14.1] Kernel panic - not syncing: sysrq triggered crash', '[ 14.2] CPU: 0 PID: 96'],
      'guest kernel panic: sysrq triggered crash',
    ],
    [
      [
        '[34.3] Out of memory: Killed process 96 (tail) total-vm:205936kB, anon-rss:203628kB',
        'kapsel-init: agent killed by signal 9 (Killed)',
      ],
      "guest out of memory: the kernel killed tail (pid 96); the guest's agent killed by signal 9 (Killed)",
    ],
    [['kapsel-init: agent exited with status 1'], "the guest's agent exited with status 1"],
  ])('%j', (lines, reason) => {
    expect(guestFault(lines)).toBe(reason);
  });

  it('says nothing when the console does not', () => {
    expect(guestFault(['[0.1] Linux version 6.1.0', 'kapsel-init: started agent'])).toBeUndefined();
  });
});
