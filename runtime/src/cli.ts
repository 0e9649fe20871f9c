import { Command, Option } from 'commander';
import type { Logger } from 'pino';
import { create } from './commands/create.js';
import { deleteContainer } from './commands/delete.js';
import { events } from './commands/events.js';
import { exec, type ExecFlags } from './commands/exec.js';
import { features } from './commands/features.js';
import { kill } from './commands/kill.js';
import { list } from './commands/list.js';
import { pause, resume } from './commands/pause.js';
import { ps } from './commands/ps.js';
import { run } from './commands/run.js';
import { spec } from './commands/spec.js';
import { start } from './commands/start.js';
import { state } from './commands/state.js';
import { update, type UpdateFlags } from './commands/update.js';
import { messageOf, RuntimeError } from './errors.js';
import { createLogger } from './log.js';
import { runMonitor } from './monitor/monitor.js';
import { DEFAULT_ROOT } from './paths.js';
import { runShim } from './shim/shim.js';
import { VERSION } from './version.js';

interface GlobalOptions {
  root: string;
  log?: string;
  logFormat: 'text' | 'json';
  debug: boolean;
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

/**
 * The runc-compatible command line. Each verb is one file in commands/; this
 * file only parses, as youki's liboci-cli does. Options of a verb come
 * before its arguments, as with runc (urfave/cli stops at the first one).
 */
export async function main(argv: readonly string[]): Promise<number> {
  let exitCode = 0;
  let log: Logger | undefined;
  const program = new Command('kapsel')
    .description('run OCI containers, each inside its own lightweight virtual machine')
    .version(`kapsel version ${VERSION}\nspec: 1.2.0`, '-v, --version')
    .option('--root <dir>', 'root directory for storage of container state', DEFAULT_ROOT)
    .option('--log <file>', 'log file (default: stderr)')
    .addOption(
      new Option('--log-format <format>', 'log format').choices(['text', 'json']).default('text'),
    )
    .option('--debug', 'enable debug logging', false)
    .option('--systemd-cgroup', 'accepted for runc compatibility; cgroups live in the guest', false)
    .addOption(new Option('--rootless <value>', 'accepted for runc compatibility').hideHelp())
    .addOption(new Option('--criu <path>', 'accepted for runc compatibility').hideHelp())
    .enablePositionalOptions()
    .showHelpAfterError()
    .exitOverride();

  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  const root = (): string => globals().root;
  const logger = (): Logger => {
    const g = globals();
    log ??= createLogger({
      format: g.logFormat,
      debug: g.debug,
      ...(g.log ? { file: g.log } : {}),
    });
    return log;
  };
  const verb = (name: string, description: string): Command =>
    program.command(name).description(description).exitOverride();

  verb('create', 'create a container (in a new VM, or in its pod sandbox)')
    .argument('<container-id>')
    .option('-b, --bundle <dir>', 'path to the root of the bundle directory', '.')
    .option('--pid-file <file>', 'file to write the process id to')
    .option('--console-socket <path>', 'unix socket that receives the pty master')
    .option('--no-pivot', 'accepted for runc compatibility (the guest always pivots)')
    .option('--no-new-keyring', 'accepted for runc compatibility')
    .option('--preserve-fds <n>', 'pass N additional file descriptors', '0')
    .action(
      async (
        id: string,
        o: { bundle: string; pidFile?: string; consoleSocket?: string; preserveFds: string },
      ) => {
        await create(
          root(),
          id,
          {
            bundle: o.bundle,
            preserveFds: Number(o.preserveFds),
            ...(o.pidFile === undefined ? {} : { pidFile: o.pidFile }),
            ...(o.consoleSocket === undefined ? {} : { consoleSocket: o.consoleSocket }),
          },
          logger(),
          globals().debug,
        );
      },
    );

  verb('start', 'start a created container')
    .argument('<container-id>')
    .action(async (id: string) => {
      await start(root(), id);
    });

  verb('run', 'create and start a container')
    .argument('<container-id>')
    .option('-b, --bundle <dir>', 'path to the root of the bundle directory', '.')
    .option('-d, --detach', 'detach from the container process', false)
    .option('--keep', 'do not delete the container after it exits', false)
    .option('--pid-file <file>', 'file to write the process id to')
    .option('--console-socket <path>', 'unix socket that receives the pty master')
    .option('--no-pivot', 'accepted for runc compatibility')
    .option('--no-new-keyring', 'accepted for runc compatibility')
    .option('--preserve-fds <n>', 'accepted when 0', '0')
    .action(
      async (
        id: string,
        o: {
          bundle: string;
          detach: boolean;
          keep: boolean;
          pidFile?: string;
          consoleSocket?: string;
        },
      ) => {
        exitCode = await run({
          root: root(),
          bundle: o.bundle,
          id,
          detach: o.detach,
          keep: o.keep,
          debug: globals().debug,
          log: logger(),
          ...(o.pidFile === undefined ? {} : { pidFile: o.pidFile }),
          ...(o.consoleSocket === undefined ? {} : { consoleSocket: o.consoleSocket }),
        });
      },
    );

  verb('exec', 'execute a new process inside the container')
    .argument('<container-id>')
    .argument('[command...]')
    .option('-p, --process <file>', 'process.json of the new process (- for stdin)')
    .option('-t, --tty', 'allocate a pseudo-TTY', false)
    .option('-d, --detach', 'detach from the process', false)
    .option('--pid-file <file>', 'file to write the process id to')
    .option('--console-socket <path>', 'unix socket that receives the pty master')
    .option('-e, --env <NAME=value>', 'set an environment variable', collect, [])
    .option('--cwd <dir>', 'working directory in the container')
    .option('-u, --user <uid[:gid]>', 'user to run as')
    .passThroughOptions()
    .action(async (id: string, command: string[], o: ExecFlags) => {
      exitCode = await exec(root(), id, command, o, logger());
    });

  verb('state', 'output the state of a container')
    .argument('<container-id>')
    .action(async (id: string) => {
      await state(root(), id);
    });

  verb('kill', 'send a signal to the container process (default: SIGTERM)')
    .argument('<container-id>')
    .argument('[signal]', 'signal name or number', 'SIGTERM')
    .option('-a, --all', 'send the signal to every process of the container', false)
    .action(async (id: string, signal: string, o: { all: boolean }) => {
      await kill(root(), id, signal, o.all);
    });

  verb('delete', 'delete any resources held by the container')
    .argument('<container-id>')
    .option('-f, --force', 'forcibly delete the container if it is still running', false)
    .action(async (id: string, o: { force: boolean }) => {
      await deleteContainer(root(), id, o.force, logger());
    });

  verb('ps', 'list processes running inside a container (guest pids)')
    .argument('<container-id>')
    .addOption(
      new Option('-f, --format <format>', 'output format')
        .choices(['table', 'json'])
        .default('table'),
    )
    .action(async (id: string, o: { format: string }) => {
      await ps(root(), id, o.format);
    });

  verb('pause', 'suspend all processes of a container')
    .argument('<container-id>')
    .action(async (id: string) => {
      await pause(root(), id);
    });

  verb('resume', 'resume all processes of a paused container')
    .argument('<container-id>')
    .action(async (id: string) => {
      await resume(root(), id);
    });

  verb('update', 'update the resource limits of a container')
    .argument('<container-id>')
    .option('-r, --resources <file>', 'linux.resources JSON file (- for stdin)')
    .option('--blkio-weight <n>', 'block IO weight')
    .option('--cpu-period <n>', 'CPU CFS period in microseconds')
    .option('--cpu-quota <n>', 'CPU CFS quota in microseconds')
    .option('--cpu-share <n>', 'CPU shares (relative weight)')
    .option('--cpu-rt-period <n>', 'CPU realtime period')
    .option('--cpu-rt-runtime <n>', 'CPU realtime runtime')
    .option('--cpuset-cpus <list>', 'CPUs to use')
    .option('--cpuset-mems <list>', 'memory nodes to use')
    .option('--memory <size>', 'memory limit')
    .option('--memory-reservation <size>', 'memory soft limit')
    .option('--memory-swap <size>', 'memory plus swap limit')
    .option('--pids-limit <n>', 'maximum number of pids')
    .action(async (id: string, o: UpdateFlags) => {
      await update(root(), id, o);
    });

  verb('events', 'display container events and statistics')
    .argument('<container-id>')
    .option('--stats', 'print the statistics once and exit', false)
    .option('--interval <duration>', 'statistics interval', '5s')
    .action(async (id: string, o: { stats: boolean; interval: string }) => {
      await events(root(), id, o.stats, o.interval);
    });

  verb('list', 'list containers started by kapsel with the given root')
    .alias('ls')
    .addOption(
      new Option('-f, --format <format>', 'output format')
        .choices(['table', 'json'])
        .default('table'),
    )
    .option('-q, --quiet', 'display only container ids', false)
    .action(async (o: { format: string; quiet: boolean }) => {
      await list(root(), o.format, o.quiet);
    });

  verb('spec', 'create a new specification file (config.json)')
    .option('-b, --bundle <dir>', 'path to the root of the bundle directory', '.')
    .option('--rootless', 'accepted for runc compatibility', false)
    .action(async (o: { bundle: string }) => {
      await spec(o.bundle);
    });

  verb('features', 'show the enabled features').action(() => {
    features();
  });

  program
    .command('__monitor', { hidden: true })
    .argument('<sandbox-id>')
    .requiredOption('--memory-mib <n>', 'guest memory', positiveInt)
    .requiredOption('--cpus <n>', 'guest vCPUs', positiveInt)
    .action(async (sandboxId: string, o: { memoryMib: number; cpus: number }) => {
      exitCode = await runMonitor(root(), sandboxId, logger(), {
        memoryMiB: o.memoryMib,
        cpus: o.cpus,
      });
    });

  program
    .command('__shim', { hidden: true })
    .argument('<container-id>')
    .requiredOption('--socket <path>')
    .option('--exec-id <id>', '', '')
    .option('--console-socket <path>')
    .action(async (id: string, o: { socket: string; execId: string; consoleSocket?: string }) => {
      await runShim({
        socket: o.socket,
        id,
        execId: o.execId,
        log: logger(),
        ...(o.consoleSocket === undefined ? {} : { consoleSocket: o.consoleSocket }),
      });
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('commander.')) {
      // commander has printed help, the version or a usage error already.
      return code === 'commander.helpDisplayed' || code === 'commander.version' ? 0 : 1;
    }
    reportError(err, log ?? logger());
    return err instanceof RuntimeError ? err.exitCode : 1;
  }
}

function reportError(err: unknown, log: Logger): void {
  log.error(messageOf(err));
  // Without --log, the logger writes to stderr already; with it, runc still
  // tells the person at the terminal.
  if (process.argv.includes('--log')) process.stderr.write(`kapsel: ${messageOf(err)}\n`);
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new RuntimeError(`not a positive integer: ${value}`);
  return n;
}
