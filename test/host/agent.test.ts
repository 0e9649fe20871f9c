import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckResponse_ServingStatus } from '../../proto/generated/agent.js';
import { AgentClient } from '../../runtime/src/sandbox/agent-client.js';
import { isRoot, type StandaloneAgent } from '../support/agent-process.js';
import { startAgentFixture, stopAgentFixture } from '../support/agent-fixture.js';
import { busyboxMissing, makeBusyboxRootfs } from '../support/busybox.js';
import { testSpec } from '../support/spec.js';

const skip = !isRoot ? 'needs root' : busyboxMissing();

async function collect(stream: AsyncIterable<Buffer>): Promise<string> {
  let out = '';
  for await (const chunk of stream) out += chunk.toString();
  return out;
}

function codeOf(p: Promise<unknown>): Promise<number | undefined> {
  return p.then(
    () => undefined,
    (err: unknown) => (err as ServiceError).code,
  );
}

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(dir));
}

describe.skipIf(skip !== undefined)(
  `agent standalone on a unix socket${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let agent: StandaloneAgent;
    let client: AgentClient;
    let rootfs: string;
    let n = 0;
    const nextId = (): string => `c${++n}-${process.pid}`;

    beforeAll(async () => {
      ({ agent, client, rootfs } = await startAgentFixture(makeBusyboxRootfs));
    });

    afterAll(async () => {
      await stopAgentFixture({ agent, client, rootfs });
    });

    /** Create, read both outputs, start, wait, remove. */
    async function runInContainer(args: string[], hostname?: string) {
      const id = nextId();
      const spec = testSpec(rootfs, args, hostname);
      await client.createContainer({
        containerId: id,
        ociSpecJson: JSON.stringify(spec),
        storages: [],
      });
      const stdout = collect(client.readOutput('stdout', id));
      const stderr = collect(client.readOutput('stderr', id));
      await client.startContainer(id);
      const exit = await client.waitProcess(id);
      const result = { id, exit, stdout: await stdout, stderr: await stderr };
      await client.removeContainer(id);
      return result;
    }

    it('answers Check and GetGuestDetails', async () => {
      expect((await client.check()).status).toBe(CheckResponse_ServingStatus.SERVING);
      const details = await client.guestDetails();
      expect(details.kernelRelease).toBe(release());
      expect(details.nodeVersion).toBe(process.version);
    });

    it('refuses RestoreGuest standalone, leaving the host clock and RNG alone', async () => {
      const before = Date.now();
      await expect(
        client.restoreGuest({
          entropy: Buffer.alloc(32, 1),
          realtimeUs: 1_000_000,
          shareWaitMs: 0,
        }),
      ).rejects.toMatchObject({ code: 9 }); // FAILED_PRECONDITION
      expect(Date.now()).toBeGreaterThanOrEqual(before);
    });

    it('runs a process as PID 1 of new namespaces in the rootfs, with the spec hostname', async () => {
      const r = await runInContainer(
        ['sh', '-c', 'echo pid=$$; hostname; cat /marker; ls -d /proc/[0-9]* | sort'],
        'box-one',
      );
      expect(r.exit).toEqual({ exitCode: 0, signal: 0 });
      const [pid, host, marker, ...procs] = r.stdout.trim().split('\n');
      expect([pid, host, marker]).toEqual(['pid=1', 'box-one', 'kapsel-test-rootfs']);
      // Only the container's own processes: sh (1), ls, sort.
      expect(procs.length).toBeLessThanOrEqual(3);
      expect(procs[0]).toBe('/proc/1');
    });

    it('reports exit codes and terminating signals', async () => {
      expect((await runInContainer(['sh', '-c', 'exit 7'])).exit).toEqual({
        exitCode: 7,
        signal: 0,
      });
      // The kernel drops signals a PID-namespace init sends itself
      // (pid_namespaces(7)), so the signalled process is a child of it.
      const viaChild = await runInContainer([
        'sh',
        '-c',
        'echo err >&2; sh -c "kill -9 \\$\\$"; exit $?',
      ]);
      expect(viaChild.exit).toEqual({ exitCode: 137, signal: 0 });
      expect(viaChild.stderr).toMatch(/^err\n/);
    });

    it('relays stdin and closes it', async () => {
      const id = nextId();
      await client.createContainer({
        containerId: id,
        ociSpecJson: JSON.stringify(testSpec(rootfs, ['cat'])),
        storages: [],
      });
      const out = collect(client.readOutput('stdout', id));
      await client.startContainer(id);
      await client.writeStdin(id, Buffer.from('hello '));
      await client.writeStdin(id, Buffer.from('world\n'));
      await client.closeStdin(id);
      expect(await client.waitProcess(id)).toEqual({ exitCode: 0, signal: 0 });
      expect(await out).toBe('hello world\n');
      await client.removeContainer(id);
    });

    it('delivers signals to the container init', async () => {
      const id = nextId();
      await client.createContainer({
        containerId: id,
        ociSpecJson: JSON.stringify(testSpec(rootfs, ['sleep', '100'])),
        storages: [],
      });
      await client.startContainer(id);
      await client.signalProcess(id, 9);
      expect(await client.waitProcess(id)).toEqual({ exitCode: 137, signal: 9 });
      await client.removeContainer(id);
    });

    it('refuses a command that does not exist at create, naming it, and leaves nothing', async () => {
      const id = nextId();
      const before = mountsUnder(rootfs).length;
      const err = await client
        .createContainer({
          containerId: id,
          ociSpecJson: JSON.stringify(testSpec(rootfs, ['no-such-command'])),
          storages: [],
        })
        .then(
          () => undefined,
          (e: unknown) => e as ServiceError,
        );
      expect(err?.details).toContain('exec: "no-such-command": executable file not found in $PATH');
      expect(await codeOf(client.startContainer(id))).toBe(status.NOT_FOUND);
      expect(mountsUnder(rootfs).length).toBe(before);
    });

    it.each([
      ['malformed spec JSON', '{not json', 'oci_spec_json'],
      ['missing process', JSON.stringify({ ociVersion: '1.2.0', root: { path: '/' } }), 'process'],
      ['unknown namespace type', 'unknown-ns', 'linux.namespaces[0].type'],
      ['relative mount destination', 'relative-mount', 'mounts[0].destination'],
    ])('refuses %s with INVALID_ARGUMENT naming the field', async (_name, specJson, field) => {
      let json = specJson;
      if (specJson === 'unknown-ns') {
        const s = testSpec(rootfs, ['true']);
        s.linux = { namespaces: [{ type: 'bogus' as 'pid' }, { type: 'mount' }] };
        json = JSON.stringify(s);
      } else if (specJson === 'relative-mount') {
        const s = testSpec(rootfs, ['true']);
        s.mounts = [{ destination: 'proc', type: 'proc', source: 'proc' }];
        json = JSON.stringify(s);
      }
      const err = await client
        .createContainer({ containerId: nextId(), ociSpecJson: json, storages: [] })
        .then(
          () => undefined,
          (e: unknown) => e as ServiceError,
        );
      expect(err?.code).toBe(status.INVALID_ARGUMENT);
      expect(err?.details).toContain(field);
    });

    it('maps lifecycle refusals to status codes', async () => {
      expect(await codeOf(client.startContainer('nope'))).toBe(status.NOT_FOUND);
      expect(await codeOf(client.waitProcess('nope'))).toBe(status.NOT_FOUND);
      expect(await codeOf(client.removeContainer('nope'))).toBe(status.NOT_FOUND);
      expect(await codeOf(client.startContainer('bad/id'))).toBe(status.INVALID_ARGUMENT);
      const id = nextId();
      const json = JSON.stringify(testSpec(rootfs, ['sleep', '100']));
      await client.createContainer({ containerId: id, ociSpecJson: json, storages: [] });
      expect(
        await codeOf(client.createContainer({ containerId: id, ociSpecJson: json, storages: [] })),
      ).toBe(status.ALREADY_EXISTS);
      expect(
        await codeOf(
          client.createContainer({ containerId: 'bad/id', ociSpecJson: json, storages: [] }),
        ),
      ).toBe(status.INVALID_ARGUMENT);
      await client.startContainer(id);
      expect(await codeOf(client.startContainer(id))).toBe(status.FAILED_PRECONDITION);
      await client.removeContainer(id);
    });

    it('answers unknown methods and undecodable requests with an error, and keeps serving', async () => {
      const raw = new Client(`unix://${agent.socket}`, credentials.createInsecure());
      const call = (method: string, body: Buffer) =>
        new Promise<number>((resolve) => {
          raw.makeUnaryRequest(
            method,
            (b: Buffer) => b,
            (b: Buffer) => b,
            body,
            new Metadata(),
            {},
            (err) => {
              resolve(err?.code ?? status.OK);
            },
          );
        });
      expect(await call('/kapsel.agent.v1.AgentService/NoSuchMethod', Buffer.alloc(0))).toBe(
        status.UNIMPLEMENTED,
      );
      // Field 1 as a length-delimited string claiming 100 bytes it does not have.
      expect(
        await call('/kapsel.agent.v1.AgentService/CreateContainer', Buffer.from([0x0a, 100, 1])),
      ).toBe(status.INVALID_ARGUMENT);
      raw.close();
      expect((await client.check()).status).toBe(CheckResponse_ServingStatus.SERVING);
    });
  },
);
