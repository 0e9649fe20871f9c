import { cpus } from 'node:os';
import type { Logger } from 'pino';
import type { ServiceError } from '@grpc/grpc-js';
import { loadBundle } from '../bundle.js';
import { RuntimeError } from '../errors.js';
import { Sandbox } from '../sandbox.js';
import { sandboxSize, sizingFromEnv } from '../sizing.js';
import { StateStore, type ContainerRecord } from '../state.js';
import { signalNumber } from '../signals.js';

export interface RunOptions {
  root: string;
  bundle: string;
  id: string;
  log: Logger;
}

/** Signals `kapsel run` passes on to the container, as runc does without a tty. */
const FORWARDED = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;

/**
 * `kapsel run --bundle DIR ID`, in the foreground: the caller's stdio is the
 * container's and the exit status is the container's (128+n when signal n
 * killed it, as runc reports it; the agent reports it so).
 */
export async function run(opts: RunOptions): Promise<number> {
  const bundle = await loadBundle(opts.bundle);
  const store = new StateStore(opts.root);
  const record: ContainerRecord = {
    id: opts.id,
    bundle: bundle.dir,
    rootfs: bundle.rootfs,
    created: new Date().toISOString(),
    pid: process.pid,
    status: 'creating',
    annotations: bundle.spec.annotations ?? {},
  };
  const stateDir = await store.create(record);
  let sandbox: Sandbox | undefined;
  const forwarders: [NodeJS.Signals, () => void][] = [];
  try {
    // Sized for the container's limits, as Kata sizes its VMs.
    const size = sandboxSize([bundle.spec], sizingFromEnv(process.env, cpus().length));
    sandbox = await Sandbox.start({ stateDir, rootfs: bundle.rootfs, log: opts.log, ...size });
    record.qemuPid = sandbox.vm.pid;
    const { agent } = sandbox;
    const guest = Sandbox.guestSpec(opts.id, bundle.spec);
    await agentCall(
      agent.createContainer({
        containerId: opts.id,
        ociSpecJson: JSON.stringify(guest.spec),
        storages: guest.storages,
      }),
    );
    record.status = 'created';
    await store.save(record);

    const outputs = Promise.all([
      pump(agent.readOutput('stdout', opts.id), process.stdout),
      pump(agent.readOutput('stderr', opts.id), process.stderr),
    ]);
    await agentCall(agent.startContainer(opts.id));
    record.status = 'running';
    await store.save(record);

    for (const name of FORWARDED) {
      const handler = (): void => {
        agent.signalProcess(opts.id, signalNumber(name)).catch((err: unknown) => {
          opts.log.debug({ err, signal: name }, 'forwarding signal failed');
        });
      };
      process.on(name, handler);
      forwarders.push([name, handler]);
    }
    relayStdin(opts.id, sandbox, opts.log);

    const exit = await agentCall(agent.waitProcess(opts.id));
    await outputs;
    return exit.exitCode;
  } finally {
    for (const [name, handler] of forwarders) process.off(name, handler);
    process.stdin.pause();
    if (sandbox !== undefined) await sandbox.stop();
    await store.remove(opts.id);
  }
}

async function pump(source: AsyncIterable<Buffer>, sink: NodeJS.WritableStream): Promise<void> {
  for await (const chunk of source) {
    if (!sink.write(chunk)) await new Promise((resolve) => sink.once('drain', resolve));
  }
}

function relayStdin(id: string, sandbox: Sandbox, log: Logger): void {
  const { agent } = sandbox;
  let chain = Promise.resolve();
  const stdin = process.stdin;
  stdin.on('data', (chunk: Buffer) => {
    stdin.pause();
    chain = chain
      .then(() => agent.writeStdin(id, chunk))
      .catch((err: unknown) => {
        log.debug({ err }, 'stdin write failed');
      })
      .finally(() => stdin.resume());
  });
  stdin.once('end', () => {
    chain = chain.then(() => agent.closeStdin(id)).catch(() => undefined);
  });
  stdin.once('error', () => {
    chain = chain.then(() => agent.closeStdin(id)).catch(() => undefined);
  });
}

/** Agent refusals become runtime errors carrying the agent's own words. */
async function agentCall<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    const details = (err as Partial<ServiceError>).details;
    if (typeof details === 'string') throw new RuntimeError(details, 1, { cause: err });
    throw err;
  }
}
