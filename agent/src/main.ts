import type { Duplex } from 'node:stream';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { IdleMemory } from '../../oci/process/idle-memory.js';
import { AgentServiceService } from '../../proto/generated/agent.js';
import { DisabledCgroups, type ContainerCgroups } from './cgroups/container-cgroups.js';
import { CgroupManager } from './cgroups/manager.js';
import { createLogger } from './log.js';
import { loadNative, type Native } from './native/index.js';
import { withDecodeGuard } from './decode-guard.js';
import { agentService } from './rpc.js';
import { Sandbox } from './sandbox.js';
import { findVirtioPort, openVirtioPort } from './transport/virtio-port.js';
import { SerialPortConnections } from './transport/serial.js';
import { listenUnix } from './transport/unix.js';
import { AGENT_PORT_NAME } from '../../proto/contract.js';
import { AGENT_VERSION } from './version.js';
import { codeCacheStatus } from './boot/status.js';
import { markStart, startMarks } from './boot/marks.js';

/**
 * kapsel-agent. In the guest (no arguments) it serves the virtio-serial port
 * `agent.channel.0`; `--listen unix:PATH` serves a unix socket instead, for
 * running standalone on a host.
 */
async function main(argv: readonly string[]): Promise<void> {
  markStart('evaluated');
  const log = createLogger();
  const listen = parseListen(argv);
  const native = loadNative();
  markStart('native');
  const sandbox = new Sandbox(native, log, cgroupManager(native, log), listen === undefined);
  markStart('sandbox');
  const server = new Server();
  const exit = (code: number): void => {
    log.info({ code }, 'agent exiting');
    log.flush();
    native.exit(code);
  };
  // After DestroySandbox the agent leaves once the host has hung up, so the
  // answer has surely reached it; a host that never hangs up is not waited
  // for long.
  let destroyed = false;
  const leaveAfterHangUp = (): void => {
    if (destroyed) exit(0);
  };
  const onDestroyed = (): void => {
    destroyed = true;
    setTimeout(() => {
      log.warn('host did not hang up after DestroySandbox; exiting anyway');
      exit(0);
    }, HANG_UP_TIMEOUT_MS).unref();
  };
  const idleMemory = new IdleMemory(
    {
      trim: () => {
        native.trimMemory();
      },
      mallopt: (param, value) => {
        native.mallopt(param, value);
      },
    },
    log,
  );
  server.addService(
    withDecodeGuard(AgentServiceService),
    agentService(sandbox, log, onDestroyed, () => {
      idleMemory.callDone();
    }),
  );
  const injector = server.createConnectionInjector(ServerCredentials.createInsecure());
  markStart('service');

  if (listen !== undefined) {
    await listenUnix(
      listen,
      (conn) => {
        conn.once('close', leaveAfterHangUp);
        injector.injectConnection(conn);
      },
      log,
    );
    log.info({ version: AGENT_VERSION, listen, ...startFacts() }, 'agent serving on unix socket');
  } else {
    const path = await findVirtioPort(AGENT_PORT_NAME);
    markStart('portFound');
    const port = SerialPortConnections.onDevice(
      await openVirtioPort(path),
      (conn: Duplex) => {
        injector.injectConnection(conn);
      },
      log,
    );
    port.onHangUp = leaveAfterHangUp;
    markStart('portOpen');
    log.info(
      { version: AGENT_VERSION, port: path, ...startFacts() },
      'agent serving on virtio-serial port',
    );
  }

  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      log.info({ signal: sig }, 'stopping');
      void sandbox.destroy().finally(() => {
        exit(0);
      });
    });
  }
}

const HANG_UP_TIMEOUT_MS = 5000;

/**
 * How this start went, for the boot timeline's readers: whether the code
 * came from the image's V8 code cache, ms since node's process began and
 * the CPU time it used (less noisy than wall time on a shared host), its
 * resident memory and V8 heap then, and when each step of its start ended
 * (boot/marks.ts).
 */
function startFacts(): Record<string, string | number | Readonly<Record<string, number>>> {
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  return {
    codeCache: codeCacheStatus(),
    uptimeMs: Math.round(process.uptime() * 1000),
    cpuMs: Math.round((cpu.user + cpu.system) / 1000),
    rssKiB: Math.round(mem.rss / 1024),
    heapKiB: Math.round(mem.heapTotal / 1024),
    startMs: startMarks(),
  };
}

/**
 * The guest's PID 1 mounts cgroup2 at /sys/fs/cgroup; standalone on a host,
 * KAPSEL_CGROUP_ROOT may point at another cgroup v2 mount (a hybrid host's
 * /sys/fs/cgroup/unified). Without one the agent runs containers without
 * cgroups and refuses linux.resources.
 */
function cgroupManager(native: Native, log: Logger): ContainerCgroups {
  const root = process.env['KAPSEL_CGROUP_ROOT'] ?? '/sys/fs/cgroup';
  if (!CgroupManager.isCgroup2(root)) {
    log.warn({ root }, 'no cgroup v2 hierarchy: containers get no cgroups');
    return new DisabledCgroups();
  }
  return new CgroupManager({ root, native, log });
}

function parseListen(argv: readonly string[]): string | undefined {
  const i = argv.indexOf('--listen');
  if (i === -1) return undefined;
  const value = argv[i + 1];
  if (value?.startsWith('unix:') !== true) {
    throw new Error(`--listen: expected unix:PATH, got ${JSON.stringify(value)}`);
  }
  return value.slice('unix:'.length);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`kapsel-agent: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
