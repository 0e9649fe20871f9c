// ExecProcess, ListProcesses, SignalProcess.all and terminals, against the
// real agent standalone on a unix socket (root, no VM).
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Process } from '../../oci/spec.js';
import { FINISHED_EXECS_KEPT } from '../../agent/src/container.js';
import { AgentClient } from '../../runtime/src/sandbox/agent-client.js';
import { isRoot, type StandaloneAgent } from '../support/agent-process.js';
import { startAgentFixture, stopAgentFixture } from '../support/agent-fixture.js';
import { busyboxMissing } from '../support/busybox.js';
import { checkerMissing, makeCheckerRootfs, parseChecker } from '../support/checker.js';
import { collect, failureOf } from '../support/engine.js';
import { testSpec } from '../support/spec.js';

const skip = !isRoot ? 'needs root' : (busyboxMissing() ?? checkerMissing());

function execProcess(args: string[], over: Partial<Process> = {}): string {
  const p: Process = {
    user: { uid: 0, gid: 0 },
    args,
    env: ['PATH=/bin'],
    cwd: '/',
    ...over,
  };
  return JSON.stringify(p);
}

async function until(cond: () => Promise<boolean> | boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The lines after the first `checker tty` report (which ends with "sid"). */
function afterChecker(lines: string[]): string[] {
  return lines.slice(lines.findIndex((l) => l.startsWith('sid ')) + 1);
}

/**
 * The output of `tty; readlink /proc/self/fd/0; ls /dev/pts` in a container:
 * the terminal is a node of the container's own devpts (runc makes it
 * there), so busybox `tty` finds it and the container lists it.
 */
function expectOwnPts([tty, link, ls]: string[]): void {
  expect(tty).toMatch(/^\/dev\/pts\/\d+$/);
  expect(link).toBe(tty);
  expect(ls?.split(/\s+/)).toContain(tty?.slice('/dev/pts/'.length));
}

describe.skipIf(skip !== undefined)(
  `exec, processes and terminals${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let agent: StandaloneAgent;
    let client: AgentClient;
    let rootfs: string;
    let n = 0;
    const nextId = (): string => `x${++n}-${process.pid}`;

    beforeAll(async () => {
      ({ agent, client, rootfs } = await startAgentFixture(makeCheckerRootfs));
    });

    afterAll(async () => {
      await stopAgentFixture({ agent, client, rootfs });
    });

    async function startSleeper(over: (s: ReturnType<typeof testSpec>) => void = () => undefined) {
      const id = nextId();
      const spec = testSpec(rootfs, ['sleep', '1000'], 'exec-box');
      over(spec);
      await client.createContainer({ containerId: id, ociSpecJson: JSON.stringify(spec) });
      await client.startContainer(id);
      return id;
    }

    async function exec(id: string, execId: string, json: string) {
      await client.execProcess(id, execId, json);
      const stdout = collect(client.readOutput('stdout', id, execId));
      const stderr = collect(client.readOutput('stderr', id, execId));
      const exit = await client.waitProcess(id, execId);
      return { exit, stdout: await stdout, stderr: await stderr };
    }

    it('execs into every namespace of the init, with its own stdio and exit code', async () => {
      const id = await startSleeper();
      const init = parseChecker(
        (await exec(id, 'ns-init', execProcess(['checker', 'ns']))).stdout,
        2,
      );
      const r = await exec(
        id,
        'e1',
        execProcess(['sh', '-c', 'checker ns; hostname; cat /marker; echo err >&2; exit 3']),
      );
      expect(r.exit).toEqual({ exitCode: 3, signal: 0 });
      expect(r.stderr).toBe('err\n');
      const seen = parseChecker(r.stdout, 2);
      for (const kind of ['mnt', 'pid', 'ipc', 'uts']) {
        expect(seen.get(`ns ${kind}`)).toBe(init.get(`ns ${kind}`));
      }
      // The agent's own namespaces are not the container's.
      const agentMnt = readlinkSync(`/proc/${agent.child.pid}/ns/mnt`).replace(/\D/g, '');
      expect(seen.get('ns mnt')).not.toBe(agentMnt);
      expect(r.stdout).toContain('exec-box\nkapsel-test-rootfs\n');
      await client.removeContainer(id);
    });

    it('joins the namespaces of the pod sandbox container for entries with a path', async () => {
      const pause = await startSleeper((s) => {
        s.linux = { namespaces: [...(s.linux?.namespaces ?? []), { type: 'network' }] };
      });
      const ns = async (id: string, execId: string) =>
        parseChecker((await exec(id, execId, execProcess(['checker', 'ns']))).stdout, 2);
      const spec = testSpec(rootfs, ['sleep', '1000']);
      spec.linux = {
        namespaces: [
          { type: 'mount' },
          { type: 'pid' },
          { type: 'uts' },
          { type: 'network', path: '/var/run/netns/from-the-host' },
          { type: 'ipc', path: '/proc/1/ns/ipc' },
        ],
      };
      const member = nextId();
      await client.createContainer({
        containerId: member,
        ociSpecJson: JSON.stringify(spec),
        sandboxContainerId: pause,
      });
      await client.startContainer(member);
      const a = await ns(pause, 'n1');
      const b = await ns(member, 'n2');
      expect(b.get('ns net')).toBe(a.get('ns net'));
      expect(b.get('ns ipc')).toBe(a.get('ns ipc'));
      expect(b.get('ns pid')).not.toBe(a.get('ns pid'));
      expect(b.get('ns mnt')).not.toBe(a.get('ns mnt'));
      await client.removeContainer(member);
      await client.removeContainer(pause);
    });

    it('addresses stdin, signals and wait by exec id, and refuses a duplicate exec id', async () => {
      const id = await startSleeper();
      await client.execProcess(id, 'cat', execProcess(['cat']));
      const out = collect(client.readOutput('stdout', id, 'cat'));
      await client.writeStdin(id, Buffer.from('to the exec\n'), 'cat');
      await client.closeStdin(id, 'cat');
      expect(await client.waitProcess(id, 'cat')).toEqual({ exitCode: 0, signal: 0 });
      expect(await out).toBe('to the exec\n');

      const dup = await failureOf(client.execProcess(id, 'cat', execProcess(['true'])));
      expect(dup?.code).toBe(status.ALREADY_EXISTS);
      const missing = await failureOf(client.waitProcess(id, 'no-such-exec'));
      expect(missing?.code).toBe(status.NOT_FOUND);

      await client.execProcess(id, 'sleeper', execProcess(['sleep', '1000']));
      await client.signalProcess(id, 9, 'sleeper');
      expect(await client.waitProcess(id, 'sleeper')).toEqual({ exitCode: 137, signal: 9 });
      // The init was not touched.
      expect((await client.listProcesses(id)).length).toBeGreaterThanOrEqual(1);
      await client.removeContainer(id);
    });

    it('refuses an exec into a container that is not running', async () => {
      const id = nextId();
      const spec = testSpec(rootfs, ['true']);
      await client.createContainer({ containerId: id, ociSpecJson: JSON.stringify(spec) });
      const err = await failureOf(client.execProcess(id, 'e', execProcess(['true'])));
      expect(err?.code).toBe(status.FAILED_PRECONDITION);
      await client.removeContainer(id);
    });

    it('lists the processes of a container and signals all of them; remove reaps execs', async () => {
      const id = await startSleeper();
      await client.execProcess(id, 'a', execProcess(['sleep', '1000']));
      await client.execProcess(id, 'b', execProcess(['sh', '-c', 'sleep 1000 & wait']));
      await until(async () => (await client.listProcesses(id)).length >= 4, '4 processes');
      const pids = await client.listProcesses(id);
      expect(pids.length).toBe(4); // init sleep, exec a, exec b's sh and its sleep
      for (const pid of pids) expect(existsSync(`/proc/${pid}`)).toBe(true);
      // SIGTERM to all: the execs die (sh and sleep have no handler); the
      // pid-namespace init ignores a signal it has no handler for.
      await client.signalProcess(id, 15, '', true);
      expect(await client.waitProcess(id, 'a')).toEqual({ exitCode: 143, signal: 15 });
      expect((await client.waitProcess(id, 'b')).signal).toBe(15);
      await client.execProcess(id, 'c', execProcess(['sleep', '1000']));
      const cPids = await client.listProcesses(id);
      await client.removeContainer(id);
      for (const pid of cPids) {
        await until(() => !existsSync(`/proc/${pid}`), `pid ${pid} to be gone`);
      }
    });

    it('gives the init a terminal with the console size, resizes it, and relays input', async () => {
      const id = nextId();
      const spec = testSpec(rootfs, [
        'sh',
        '-c',
        'checker tty; tty; readlink /proc/self/fd/0; ls /dev/pts; stty size; read line; echo got=$line; checker tty; stty size',
      ]);
      spec.process = {
        ...spec.process,
        terminal: true,
        consoleSize: { height: 33, width: 111 },
        user: { uid: 0, gid: 0 },
        cwd: '/',
      };
      await client.createContainer({ containerId: id, ociSpecJson: JSON.stringify(spec) });
      const stderr = await collect(client.readOutput('stderr', id));
      expect(stderr).toBe('');
      let out = '';
      const reading = (async () => {
        for await (const chunk of client.readOutput('stdout', id)) out += chunk.toString();
      })();
      await client.startContainer(id);
      // Input only after the reports: the terminal echoes it into the output.
      await until(() => out.includes('33 111'), 'the first stty size');
      await client.ttyWinResize(id, 50, 160);
      await client.writeStdin(id, Buffer.from('hello\n'));
      expect(await client.waitProcess(id)).toEqual({ exitCode: 0, signal: 0 });
      await reading;
      // A terminal turns \n into \r\n and echoes the input.
      const lines = out.replaceAll('\r', '').split('\n');
      expect(lines[0]).toBe('tty 1 rows 33 cols 111');
      const after = afterChecker(lines);
      expectOwnPts(after);
      expect(after[3]).toBe('33 111');
      expect(lines).toContain('got=hello');
      expect(lines).toContain('tty 1 rows 50 cols 160');
      expect(lines).toContain('50 160');
      // The init is a session leader with the terminal as its controlling tty.
      const sid = lines.find((l) => l.startsWith('sid '));
      expect(sid).toMatch(/^sid 1 pgrp 1 tcpgrp 1$/);
      await client.removeContainer(id);
    });

    it('remove kills what a container without a pid namespace left behind', async () => {
      const id = await startSleeper((s) => {
        s.linux = { namespaces: [{ type: 'mount' }, { type: 'uts' }, { type: 'ipc' }] };
        if (s.process) s.process.args = ['sh', '-c', 'sleep 1000 & sleep 1000 & wait'];
      });
      await client.execProcess(id, 'bg', execProcess(['sh', '-c', 'sleep 1000 & wait']));
      await until(async () => (await client.listProcesses(id)).length === 5, '5 processes');
      const pids = await client.listProcesses(id);
      await client.removeContainer(id);
      for (const pid of pids) {
        await until(() => {
          try {
            return (
              readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') ?? true
            );
          } catch {
            return true;
          }
        }, `pid ${pid} to be gone`);
      }
    });

    it(`keeps the last ${FINISHED_EXECS_KEPT} ended execs, and forgets older ones`, async () => {
      const id = await startSleeper();
      const count = FINISHED_EXECS_KEPT + 6;
      for (let i = 1; i <= count; i++) {
        await client.execProcess(id, `u${i}`, execProcess(['true']));
      }
      await until(async () => (await client.listProcesses(id)).length === 1, 'the execs to exit');
      // The next exec forgets what is over the limit: the oldest, output unread.
      await exec(id, 'next', execProcess(['true']));
      const forgotten = count - FINISHED_EXECS_KEPT;
      for (let i = 1; i <= forgotten; i++) {
        expect((await failureOf(client.waitProcess(id, `u${i}`)))?.code).toBe(status.NOT_FOUND);
      }
      // The kept ones still answer, twice, and hold their ids.
      for (const i of [forgotten + 1, count]) {
        expect(await client.waitProcess(id, `u${i}`)).toEqual({ exitCode: 0, signal: 0 });
        expect(await client.waitProcess(id, `u${i}`)).toEqual({ exitCode: 0, signal: 0 });
        const dup = await failureOf(client.execProcess(id, `u${i}`, execProcess(['true'])));
        expect(dup?.code).toBe(status.ALREADY_EXISTS);
      }
      await client.removeContainer(id);
    });

    it('frees the terminal of an exec once it has exited and its output was read', async () => {
      const id = await startSleeper();
      for (const n of [1, 2, 3]) {
        await client.execProcess(id, `t${n}`, execProcess(['true'], { terminal: true }));
        const out = collect(client.readOutput('stdout', id, `t${n}`));
        await client.waitProcess(id, `t${n}`);
        await out;
      }
      await client.execProcess(id, 'ls', execProcess(['ls', '/dev/pts']));
      const listing = collect(client.readOutput('stdout', id, 'ls'));
      await client.waitProcess(id, 'ls');
      expect((await listing).split('\n').filter((l) => /^\d+$/.test(l))).toEqual([]);
      await client.removeContainer(id);
    });

    it('leaves no fd behind in the agent after execs and terminals', async () => {
      const fds = (): number => readdirSync(`/proc/${agent.child.pid}/fd`).length;
      const before = fds();
      const id = await startSleeper();
      await client.execProcess(id, 'p', execProcess(['true']));
      await client.execProcess(id, 't', execProcess(['true'], { terminal: true }));
      await client.waitProcess(id, 'p');
      await client.waitProcess(id, 't');
      await client.removeContainer(id);
      // At most as many as before: fds of earlier tests may still be closing
      // when `before` is taken, so the count can also end lower.
      await until(() => fds() <= before, `agent fds back to ${before} (now ${fds()})`);
    });

    it('gives an exec a terminal of its own; closing stdin sends EOF', async () => {
      const id = await startSleeper();
      await client.execProcess(
        id,
        't',
        execProcess(
          [
            'sh',
            '-c',
            'checker tty; tty; readlink /proc/self/fd/0; ls /dev/pts; stty size; read x; stty size; cat',
          ],
          { terminal: true, consoleSize: { height: 20, width: 70 } },
        ),
      );
      let out = '';
      const reading = (async () => {
        for await (const chunk of client.readOutput('stdout', id, 't')) out += chunk.toString();
      })();
      // Input only after the report: the terminal echoes it into the output.
      await until(() => out.includes('20 70'), 'the first stty size');
      await client.ttyWinResize(id, 25, 90, 't');
      await client.writeStdin(id, Buffer.from('go\n'), 't');
      await until(() => out.includes('25 90'), 'the stty size after the resize');
      await client.writeStdin(id, Buffer.from('line\n'), 't');
      await client.closeStdin(id, 't');
      expect(await client.waitProcess(id, 't')).toEqual({ exitCode: 0, signal: 0 });
      await reading;
      const text = out.replaceAll('\r', '');
      expect(text).toContain('tty 1 rows 20 cols 70');
      const after = afterChecker(text.split('\n'));
      expectOwnPts(after);
      expect(after[3]).toBe('20 70');
      expect(text).toContain('line\n');
      const err = await failureOf(client.ttyWinResize(id, 10, 10, 'no-such'));
      expect(err?.code).toBe(status.NOT_FOUND);
      const noTty = await failureOf(client.ttyWinResize(id, 10, 10));
      expect(noTty?.code).toBe(status.FAILED_PRECONDITION);
      await client.removeContainer(id);
    });
  },
);
