// Exec, signals and removal against the recording fake of the native helper.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { AgentError } from '../../agent/src/errors.js';
import { FakeNative } from '../../agent/src/native/fake.js';
import { Sandbox } from '../../agent/src/sandbox.js';

const log = pino({ level: 'silent' });

function specJson(edit: Record<string, unknown> = {}): string {
  return JSON.stringify({
    ociVersion: '1.2.0',
    process: { user: { uid: 0, gid: 0 }, args: ['sleep', '100'], cwd: '/' },
    root: { path: '/rootfs' },
    linux: {
      namespaces: [{ type: 'mount' }, { type: 'pid' }, { type: 'user' }, { type: 'uts' }],
      uidMappings: [{ containerID: 0, hostID: 1000, size: 100 }],
      gidMappings: [{ containerID: 0, hostID: 1000, size: 100 }],
      seccomp: {
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }],
      },
    },
    ...edit,
  });
}

const proc = (over: Record<string, unknown> = {}): string =>
  JSON.stringify({ user: { uid: 5, gid: 5 }, args: ['ls'], cwd: '/tmp', ...over });

async function running(): Promise<{ fake: FakeNative; sandbox: Sandbox }> {
  const fake = new FakeNative();
  const sandbox = new Sandbox(fake, log);
  await sandbox.createContainer('c', specJson(), []);
  await sandbox.startContainer('c');
  return { fake, sandbox };
}

function kindOf(err: unknown): string | undefined {
  return err instanceof AgentError ? err.kind : undefined;
}

describe('exec with the recording fake', () => {
  it('joins every namespace of the init, user first and mount last, with the container seccomp', async () => {
    const { fake, sandbox } = await running();
    const init = fake.processes[0];
    await sandbox.execProcess('c', 'e1', proc({ terminal: true }));
    const req = fake.callsOf('spawn')[1]?.req;
    expect(req?.namespaces).toEqual([]);
    expect(req?.rootfs).toBeUndefined();
    expect(req?.joinNamespaces).toEqual([
      { kind: 'user', path: `/proc/${init?.pid}/ns/user` },
      { kind: 'uts', path: `/proc/${init?.pid}/ns/uts` },
      { kind: 'pid', path: `/proc/${init?.pid}/ns/pid` },
      { kind: 'mount', path: `/proc/${init?.pid}/ns/mnt` },
    ]);
    expect(req?.seccomp?.rules.map((r) => r.name)).toEqual(['mkdir']);
    expect(req?.args).toEqual(['ls']);
    expect(req?.cwd).toBe('/tmp');
    expect(req?.terminal).toEqual({ rows: 0, cols: 0 });
    // Started once spawned.
    expect(fake.calls.at(-1)).toEqual({ op: 'start', pid: fake.processes[1]?.pid });
  });

  it('refuses a duplicate exec id, an exec into a stopped container and unmapped users', async () => {
    const { fake, sandbox } = await running();
    await sandbox.execProcess('c', 'e1', proc());
    expect(kindOf(await sandbox.execProcess('c', 'e1', proc()).catch((e: unknown) => e))).toBe(
      'already-exists',
    );
    expect(kindOf(await sandbox.execProcess('c', '', proc()).catch((e: unknown) => e))).toBe(
      'invalid-argument',
    );
    const unmapped = await sandbox
      .execProcess('c', 'e2', proc({ user: { uid: 500, gid: 0 } }))
      .catch((e: unknown) => e);
    expect((unmapped as Error).message).toContain('process.user.uid: 500 is not mapped');
    fake.processes[0]?.exitWith(0);
    await sandbox.waitProcess('c', '');
    expect(kindOf(await sandbox.execProcess('c', 'e3', proc()).catch((e: unknown) => e))).toBe(
      'failed-precondition',
    );
  });

  it('addresses wait, signal and resize by exec id', async () => {
    const { fake, sandbox } = await running();
    await sandbox.execProcess('c', 't', proc({ terminal: true }));
    const exec = fake.processes[1];
    sandbox.ttyWinResize('c', 't', 30, 100);
    expect(fake.callsOf('resize')).toEqual([{ op: 'resize', pid: exec?.pid, rows: 30, cols: 100 }]);
    expect(() => {
      sandbox.ttyWinResize('c', '', 1, 1);
    }).toThrow(/no terminal/);
    sandbox.signalProcess('c', 't', 9);
    expect(await sandbox.waitProcess('c', 't')).toEqual({ exitCode: 137, signal: 9 });
    expect(fake.processes[0]?.started).toBe(true);
    expect(() => {
      sandbox.signalProcess('c', 'nope', 9);
    }).toThrow(/does not exist/);
  });

  it('gives an exec the container cgroup directory when it has one', async () => {
    const fake = new FakeNative();
    const sandbox = new Sandbox(fake, log);
    await sandbox.createContainer('c', specJson(), []);
    await sandbox.startContainer('c');
    const c = sandbox.get('c');
    (c.execContext as { cgroupDir?: string }).cgroupDir = '/sys/fs/cgroup/kapsel/c';
    await sandbox.execProcess('c', 'e', proc());
    expect(fake.callsOf('spawn')[1]?.req.cgroup).toBe('/sys/fs/cgroup/kapsel/c');
  });

  it('kills and reaps every exec on remove', async () => {
    const { fake, sandbox } = await running();
    await sandbox.execProcess('c', 'a', proc());
    await sandbox.execProcess('c', 'b', proc());
    await sandbox.removeContainer('c');
    const killed = fake
      .callsOf('signal')
      .filter((s) => s.signo === 9)
      .map((s) => s.pid);
    expect(killed.sort()).toEqual(fake.processes.map((p) => p.pid).sort());
  });

  it('joins a pod sandbox container namespaces for entries with a path', async () => {
    const { fake, sandbox } = await running();
    const sandboxPid = fake.processes[0]?.pid;
    await sandbox.createContainer(
      'member',
      specJson({
        linux: { namespaces: [{ type: 'mount' }, { type: 'network', path: '/host/netns' }] },
      }),
      [],
      'c',
    );
    expect(fake.callsOf('spawn')[1]?.req.joinNamespaces).toEqual([
      { kind: 'network', path: `/proc/${sandboxPid}/ns/net` },
    ]);
    const noSandbox = await sandbox
      .createContainer(
        'm2',
        specJson({ linux: { namespaces: [{ type: 'mount' }, { type: 'ipc', path: '/x' }] } }),
        [],
      )
      .catch((e: unknown) => e);
    expect((noSandbox as Error).message).toContain('sandbox_container_id');
  });
});
