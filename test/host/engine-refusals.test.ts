// Bad specs are refused at create naming the field, and leave no process or
// mount behind; symlinks in the image cannot send a mount outside the rootfs.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Spec } from '../../oci/spec.js';
import { AgentClient } from '../../runtime/src/sandbox/agent-client.js';
import { isRoot, type StandaloneAgent } from '../support/agent-process.js';
import { startAgentFixture, stopAgentFixture } from '../support/agent-fixture.js';
import { busyboxMissing } from '../support/busybox.js';
import { checkerMissing, makeCheckerRootfs } from '../support/checker.js';
import { failureOf, runSpec } from '../support/engine.js';
import { testSpec } from '../support/spec.js';

const skip = !isRoot ? 'needs root' : (busyboxMissing() ?? checkerMissing());

function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const mountinfo = (): string[] =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ').slice(4).join(' '));

type Edit = (s: Spec) => void;

const CASES: [string, Edit, string][] = [
  [
    'unknown namespace type',
    (s) => {
      s.linux = { namespaces: [{ type: 'mount' }, { type: 'bogus' as 'pid' }] };
    },
    'linux.namespaces[1].type: unknown namespace type "bogus"',
  ],
  [
    'relative mount destination',
    (s) => {
      s.mounts = [{ destination: 'proc', type: 'proc', source: 'proc' }];
    },
    'mounts[0].destination',
  ],
  [
    'missing bind mount source',
    (s) => {
      s.mounts = [{ destination: '/data', source: '/no/such/dir', options: ['rbind'] }];
    },
    'mounts[0].source: "/no/such/dir" does not exist',
  ],
  [
    'misspelt capability',
    (s) => {
      if (s.process) s.process.capabilities = { bounding: ['CAP_CHOWN', 'CAP_SYS_ADMN'] };
    },
    'process.capabilities.bounding[1]: unknown capability "CAP_SYS_ADMN"',
  ],
  [
    'unknown seccomp syscall',
    (s) => {
      s.linux = {
        ...s.linux,
        seccomp: {
          defaultAction: 'SCMP_ACT_ALLOW',
          syscalls: [{ names: ['getpid', 'no_such_syscall'], action: 'SCMP_ACT_ERRNO' }],
        },
      };
    },
    'linux.seccomp.syscalls[0].names[1]: seccomp: unknown syscall `no_such_syscall`',
  ],
  [
    'unknown rlimit type',
    (s) => {
      if (s.process) s.process.rlimits = [{ type: 'RLIMIT_NOFILES', soft: 1, hard: 1 }];
    },
    'process.rlimits[0].type: unknown rlimit "RLIMIT_NOFILES"',
  ],
  [
    'uid out of range',
    (s) => {
      if (s.process) s.process.user = { uid: 2 ** 32, gid: 0 };
    },
    'process.user.uid: must be an integer in 0..4294967294',
  ],
  [
    'uid not mapped in the user namespace',
    (s) => {
      s.linux = {
        namespaces: [{ type: 'user' }, { type: 'mount' }, { type: 'uts' }],
        uidMappings: [{ containerID: 0, hostID: 100000, size: 10 }],
        gidMappings: [{ containerID: 0, hostID: 100000, size: 10 }],
      };
      if (s.process) s.process.user = { uid: 50, gid: 0 };
    },
    'process.user.uid: 50 is not mapped',
  ],
  [
    'sysctl outside the container namespaces',
    (s) => {
      s.linux = { ...s.linux, sysctl: { 'vm.swappiness': '1' } };
    },
    'linux.sysctl["vm.swappiness"]',
  ],
  [
    'unknown device type',
    (s) => {
      s.linux = { ...s.linux, devices: [{ type: 'x', path: '/dev/x' }] };
    },
    'linux.devices[0].type',
  ],
];

describe.skipIf(skip !== undefined)(
  `refusals and confinement${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let agent: StandaloneAgent;
    let client: AgentClient;
    let rootfs: string;
    let n = 0;
    const nextId = (): string => `r${++n}-${process.pid}`;

    beforeAll(async () => {
      ({ agent, client, rootfs } = await startAgentFixture(makeCheckerRootfs));
    });

    afterAll(async () => {
      await stopAgentFixture({ agent, client, rootfs });
    });

    it.each(CASES)(
      'refuses %s at create, naming the field, leaving nothing',
      async (_n, edit, text) => {
        const spec = testSpec(rootfs, ['true']);
        edit(spec);
        const mountsBefore = mountinfo();
        const id = nextId();
        const err = await failureOf(
          client.createContainer({ containerId: id, ociSpecJson: JSON.stringify(spec) }),
        );
        expect(err?.code).toBe(status.INVALID_ARGUMENT);
        expect(err?.details).toContain(text);
        expect(childrenOf(agent.child.pid ?? -1)).toEqual([]);
        expect(mountinfo()).toEqual(mountsBefore);
        expect((await failureOf(client.startContainer(id)))?.code).toBe(status.NOT_FOUND);
      },
    );

    it('opens a terminal only in the container, whatever its /dev/ptmx says', async () => {
      // No /dev tmpfs and no devpts: the image's own /dev/ptmx is used, and
      // it points up and out at the agent's ptmx. Resolved in the container
      // root it names nothing, so create fails and leaves nothing.
      mkdirSync(join(rootfs, 'dev'), { recursive: true });
      const link = join(rootfs, 'dev', 'ptmx');
      rmSync(link, { force: true });
      symlinkSync('/../../../../../../../../dev/pts/ptmx', link);
      try {
        const spec = testSpec(rootfs, ['true']);
        spec.mounts = (spec.mounts ?? []).filter((m) => !m.destination.startsWith('/dev'));
        spec.process = { ...spec.process, terminal: true, user: { uid: 0, gid: 0 }, cwd: '/' };
        const mountsBefore = mountinfo();
        const id = nextId();
        const err = await failureOf(
          client.createContainer({ containerId: id, ociSpecJson: JSON.stringify(spec) }),
        );
        expect(err?.details).toContain('/dev/ptmx');
        // The init is killed once READY brought no pty.
        for (let i = 0; i < 200 && childrenOf(agent.child.pid ?? -1).length > 0; i++) {
          await new Promise((r) => setTimeout(r, 25));
        }
        expect(childrenOf(agent.child.pid ?? -1)).toEqual([]);
        expect(mountinfo()).toEqual(mountsBefore);
        expect((await failureOf(client.startContainer(id)))?.code).toBe(status.NOT_FOUND);
      } finally {
        rmSync(link);
      }
    });

    it('keeps mounts and masked paths inside the rootfs whatever its symlinks say', async () => {
      // An image with symlinks to "/" and "..": followed on the agent's side,
      // the mounts below would land on the agent's root and on the rootfs's
      // parent directory.
      symlinkSync('/', join(rootfs, 'to-root'));
      symlinkSync('..', join(rootfs, 'to-parent'));
      symlinkSync('../../../../../..', join(rootfs, 'far-up'));
      const outsideRoot = `/kapsel-escape-${process.pid}`;
      const outsideParent = join(dirname(rootfs), `kapsel-escape-${process.pid}`);
      const name = `kapsel-escape-${process.pid}`;
      const spec = testSpec(rootfs, [
        'sh',
        '-c',
        `grep -c " /${name}-[a-z]* " /proc/self/mountinfo; ls -d /${name}-*; echo marker=$(cat /marker)`,
      ]);
      spec.mounts = [
        ...(spec.mounts ?? []),
        { destination: `/to-root/${name}-a`, type: 'tmpfs', source: 'tmpfs' },
        { destination: `/to-parent/${name}-b`, type: 'tmpfs', source: 'tmpfs' },
        { destination: `/far-up/${name}-c`, type: 'tmpfs', source: 'tmpfs' },
      ];
      spec.linux = { ...spec.linux, maskedPaths: ['/to-root/marker', '/to-parent/../marker'] };
      const mountsBefore = mountinfo();
      const r = await runSpec(client, nextId(), spec);
      expect(r.stderr).toBe('');
      expect(r.exit.exitCode).toBe(0);
      const lines = r.stdout.split('\n');
      // All three tmpfs are mounts of the container, at its root.
      expect(lines[0]).toBe('3');
      expect(lines.slice(1, 4)).toEqual([`/${name}-a`, `/${name}-b`, `/${name}-c`]);
      // Masked inside: the container's /marker, reached through the links.
      expect(lines[4]).toBe('marker=');
      // Nothing on the agent's side.
      for (const p of [`${outsideRoot}-a`, `${outsideParent}-b`, `${outsideRoot}-c`]) {
        expect(existsSync(p)).toBe(false);
      }
      expect(readFileSync(join(rootfs, 'marker'), 'utf8')).toBe('kapsel-test-rootfs\n');
      expect(mountinfo()).toEqual(mountsBefore);
    });
  },
);
