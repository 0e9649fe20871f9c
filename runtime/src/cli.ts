import { Command, Option } from 'commander';
import type { Logger } from 'pino';
import { deleteContainer } from './commands/delete.js';
import { run } from './commands/run.js';
import { spec } from './commands/spec.js';
import { state } from './commands/state.js';
import { messageOf, RuntimeError } from './errors.js';
import { createLogger } from './log.js';
import { DEFAULT_ROOT } from './paths.js';
import { VERSION } from './version.js';

interface GlobalOptions {
  root: string;
  log?: string;
  logFormat: 'text' | 'json';
  debug: boolean;
}

/**
 * The runc-compatible command line. Each verb is one file in commands/; this
 * file only parses, as youki's liboci-cli does.
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
    .showHelpAfterError()
    .exitOverride();

  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  const logger = (): Logger => {
    const g = globals();
    log ??= createLogger({
      format: g.logFormat,
      debug: g.debug,
      ...(g.log ? { file: g.log } : {}),
    });
    return log;
  };

  program
    .command('run')
    .description('create and run a container in a new VM, in the foreground')
    .argument('<container-id>')
    .option('-b, --bundle <dir>', 'path to the root of the bundle directory', '.')
    .action(async (id: string, o: { bundle: string }) => {
      exitCode = await run({ root: globals().root, bundle: o.bundle, id, log: logger() });
    });

  program
    .command('spec')
    .description('create a new specification file (config.json)')
    .option('-b, --bundle <dir>', 'path to the root of the bundle directory', '.')
    .action(async (o: { bundle: string }) => {
      await spec(o.bundle);
    });

  program
    .command('state')
    .description('output the state of a container')
    .argument('<container-id>')
    .action(async (id: string) => {
      await state(globals().root, id);
    });

  program
    .command('delete')
    .description('delete any resources held by the container')
    .argument('<container-id>')
    .option('-f, --force', 'forcibly delete the container if it is still running', false)
    .action(async (id: string, o: { force: boolean }) => {
      await deleteContainer(globals().root, id, o.force, logger());
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
