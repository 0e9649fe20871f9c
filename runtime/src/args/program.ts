import { Command, Option } from 'commander';
import type { Logger } from 'pino';
import { OCI_VERSION } from '../../../oci/spec.js';
import { DEFAULT_ROOT } from '../container/state.js';
import { CONFIG_ENV, DEFAULT_CONFIG_PATHS } from '../config/load.js';
import { reportSettingsTo, settings, useConfigFile } from '../config/settings.js';
import { messageOf } from '../sys/errors.js';
import { createLogger } from '../sys/log.js';
import { VERSION } from '../version.js';

/** runc's global options, as commander parsed them. */
export interface GlobalOptions {
  root: string;
  log?: string;
  logFormat: 'text' | 'json';
  debug: boolean;
  systemdCgroup: boolean;
  config?: string;
}

/** What a verb's action needs from the command line around it. */
export interface Context {
  globals(): GlobalOptions;
  /** The --log/--log-format/--debug logger, made on first use. */
  logger(): Logger;
  /** The process's exit status, for verbs that end as a guest process did. */
  exitCode: number;
}

/**
 * The `kapsel` command with runc's global options. Options of a verb come
 * before its arguments, as with runc (urfave/cli stops at the first one).
 */
export function newProgram(): { program: Command; ctx: Context } {
  const program = new Command('kapsel')
    .description('run OCI containers, each inside its own lightweight virtual machine')
    .version(`kapsel version ${VERSION}\nspec: ${OCI_VERSION}`, '-v, --version')
    .option('--root <dir>', 'root directory for storage of container state', DEFAULT_ROOT)
    .option('--log <file>', 'log file (default: stderr)')
    .addOption(
      new Option('--log-format <format>', 'log format').choices(['text', 'json']).default('text'),
    )
    .option('--debug', 'enable debug logging', false)
    .option(
      '--config <file>',
      `configuration file (default: $${CONFIG_ENV}, else ${DEFAULT_CONFIG_PATHS.join(' or ')} if present)`,
    )
    .option('--systemd-cgroup', 'read cgroupsPath as slice:prefix:name for the host cgroup', false)
    .addOption(new Option('--rootless <value>', 'accepted for runc compatibility').hideHelp())
    .addOption(new Option('--criu <path>', 'accepted for runc compatibility').hideHelp())
    .enablePositionalOptions()
    .showHelpAfterError()
    .exitOverride();
  let log: Logger | undefined;
  const ctx: Context = {
    globals: () => program.opts<GlobalOptions>(),
    logger: () => {
      const g = ctx.globals();
      log ??= createLogger({
        format: g.logFormat,
        debug: g.debug || configuredDebug(),
        ...(g.log ? { file: g.log } : {}),
      });
      return log;
    },
    exitCode: 0,
  };
  program.hook('preAction', (_root, action) => {
    useConfigFile(ctx.globals().config);
    const log = ctx.logger();
    reportSettingsTo(log);
    // Read before anything is made, so a configuration mistake leaves
    // nothing. The other verbs (delete, kill, state...) only warn: a broken
    // file must not block clean-up.
    try {
      settings();
    } catch (err) {
      if (STARTS_SANDBOX.has(action.name())) throw err;
      log.warn(messageOf(err));
    }
  });
  return { program, ctx };
}

/** The verbs that start a sandbox: the ones the configuration is for. */
const STARTS_SANDBOX = new Set(['create', 'run', '__monitor']);

/** runtime.enable_debug, when the configuration can be read (else see preAction). */
function configuredDebug(): boolean {
  try {
    return settings().runtime.enable_debug;
  } catch {
    return false;
  }
}

/** A verb of `program` whose usage errors reach main() instead of exiting. */
export function verb(program: Command, name: string, description: string): Command {
  return program.command(name).description(description).exitOverride();
}

/** Collects a repeatable option (`-e A -e B`). */
export const collect = (v: string, prev: string[]): string[] => [...prev, v];
