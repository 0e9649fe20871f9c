import { describe, expect, it } from 'vitest';
import { MS, mountOptionsToFlags, type MountFlags } from '../../agent/src/native/mount-options.js';

// Docker's and containerd's default mounts, and the corner cases of runc's
// parseMountOptions().
const cases: { name: string; options: string[]; want: MountFlags }[] = [
  { name: 'no options', options: [], want: { flags: 0, propagation: 0, data: '' } },
  {
    name: '/proc',
    options: ['nosuid', 'noexec', 'nodev'],
    want: { flags: MS.NOSUID | MS.NOEXEC | MS.NODEV, propagation: 0, data: '' },
  },
  {
    name: '/dev tmpfs',
    options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
    want: { flags: MS.NOSUID | MS.STRICTATIME, propagation: 0, data: 'mode=755,size=65536k' },
  },
  {
    name: '/dev/pts',
    options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    want: {
      flags: MS.NOSUID | MS.NOEXEC,
      propagation: 0,
      data: 'newinstance,ptmxmode=0666,mode=0620,gid=5',
    },
  },
  {
    name: '/sys read-only',
    options: ['nosuid', 'noexec', 'nodev', 'ro'],
    want: { flags: MS.NOSUID | MS.NOEXEC | MS.NODEV | MS.RDONLY, propagation: 0, data: '' },
  },
  {
    name: 'bind with propagation',
    options: ['bind', 'rprivate'],
    want: { flags: MS.BIND, propagation: MS.PRIVATE | MS.REC, data: '' },
  },
  {
    name: 'read-only rbind',
    options: ['rbind', 'ro', 'nosuid'],
    want: { flags: MS.BIND | MS.REC | MS.RDONLY | MS.NOSUID, propagation: 0, data: '' },
  },
  {
    name: 'later word wins: ro,rw',
    options: ['ro', 'rw'],
    want: { flags: 0, propagation: 0, data: '' },
  },
  {
    name: 'later word wins: rw,ro',
    options: ['rw', 'ro'],
    want: { flags: MS.RDONLY, propagation: 0, data: '' },
  },
  {
    name: 'clearing words',
    options: ['nosuid', 'nodev', 'noexec', 'suid', 'dev', 'exec'],
    want: { flags: 0, propagation: 0, data: '' },
  },
  {
    name: 'atime words',
    options: ['relatime', 'noatime', 'nodiratime'],
    want: { flags: MS.RELATIME | MS.NOATIME | MS.NODIRATIME, propagation: 0, data: '' },
  },
  {
    name: 'last propagation wins, as runc applies them in order',
    options: ['rshared', 'slave'],
    want: { flags: 0, propagation: MS.SLAVE, data: '' },
  },
  {
    name: 'runtime-only words are dropped',
    options: ['tmpcopyup', 'nosuid', ''],
    want: { flags: MS.NOSUID, propagation: 0, data: '' },
  },
  {
    name: 'unknown words are filesystem data',
    options: ['context="system_u:object_r:container_file_t:s0"', 'uid=0'],
    want: {
      flags: 0,
      propagation: 0,
      data: 'context="system_u:object_r:container_file_t:s0",uid=0',
    },
  },
  {
    name: 'no prototype keys',
    options: ['constructor', 'toString'],
    want: { flags: 0, propagation: 0, data: 'constructor,toString' },
  },
];

describe('mountOptionsToFlags', () => {
  it.each(cases)('$name', ({ options, want }) => {
    expect(mountOptionsToFlags(options)).toEqual(want);
  });

  it('uses the kernel values of MS_*', () => {
    // include/uapi/linux/mount.h
    expect(MS).toMatchObject({
      RDONLY: 1,
      BIND: 4096,
      REC: 16384,
      PRIVATE: 1 << 18,
      SLAVE: 1 << 19,
      SHARED: 1 << 20,
      STRICTATIME: 1 << 24,
    });
  });
});
