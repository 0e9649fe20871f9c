import { describe, expect, it } from 'vitest';
import { deviceFilterProgram, type DeviceRule } from '../../../agent/src/cgroups/device-filter.js';
import { deviceRules } from '../../../agent/src/cgroups/devices.js';
import { runDeviceFilter } from '../../support/device-filter-interp.js';

const allowAll: DeviceRule = { allow: true, type: 'a', major: -1, minor: -1, access: 'rwm' };

describe('device filter program', () => {
  it('with runc spec defaults (deny all first) allows only the standard nodes', () => {
    const prog = deviceFilterProgram(deviceRules([{ allow: false, access: 'rwm' }], []));
    expect(runDeviceFilter(prog, 'c', 1, 3, 'rw')).toBe(true); // /dev/null
    expect(runDeviceFilter(prog, 'c', 1, 9, 'r')).toBe(true); // /dev/urandom
    expect(runDeviceFilter(prog, 'c', 136, 4, 'rw')).toBe(true); // /dev/pts/4
    expect(runDeviceFilter(prog, 'c', 1, 11, 'w')).toBe(false); // /dev/kmsg
    expect(runDeviceFilter(prog, 'b', 8, 0, 'r')).toBe(false); // /dev/sda
    expect(runDeviceFilter(prog, 'b', 8, 0, 'm')).toBe(true); // mknod is allowed
  });

  it('lets the last matching rule decide', () => {
    const prog = deviceFilterProgram([
      allowAll,
      { allow: false, type: 'c', major: 1, minor: -1, access: 'rwm' },
      { allow: true, type: 'c', major: 1, minor: 5, access: 'r' },
    ]);
    expect(runDeviceFilter(prog, 'c', 1, 3, 'r')).toBe(false);
    expect(runDeviceFilter(prog, 'c', 1, 5, 'r')).toBe(true);
    expect(runDeviceFilter(prog, 'c', 1, 5, 'rw')).toBe(false);
    expect(runDeviceFilter(prog, 'c', 4, 1, 'rw')).toBe(true);
  });

  it('denies an access that asks for any denied bit', () => {
    const prog = deviceFilterProgram([
      allowAll,
      { allow: false, type: 'c', major: 1, minor: 3, access: 'w' },
    ]);
    expect(runDeviceFilter(prog, 'c', 1, 3, 'r')).toBe(true);
    expect(runDeviceFilter(prog, 'c', 1, 3, 'w')).toBe(false);
    expect(runDeviceFilter(prog, 'c', 1, 3, 'rw')).toBe(false);
  });

  it('denies what no rule matches, and emits nothing after an unconditional rule', () => {
    const empty = deviceFilterProgram([]);
    expect(runDeviceFilter(empty, 'c', 1, 3, 'r')).toBe(false);
    // 6 prologue instructions + mov/exit of the allow-all block, no default
    // (the verifier refuses unreachable code).
    expect(deviceFilterProgram([allowAll]).length / 8).toBe(8);
  });

  it('allows the nodes linux.devices creates', () => {
    const prog = deviceFilterProgram(
      deviceRules([{ allow: false }], [{ type: 'c', path: '/dev/fuse', major: 10, minor: 229 }]),
    );
    expect(runDeviceFilter(prog, 'c', 10, 229, 'rw')).toBe(true);
  });
});
