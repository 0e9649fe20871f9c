import { addHiddenVerbs } from './args/hidden-verbs.js';
import {
  eventsVerb,
  featuresVerb,
  listVerb,
  psVerb,
  specVerb,
  stateVerb,
  updateVerb,
} from './args/inspect-verbs.js';
import {
  createVerb,
  deleteVerb,
  execVerb,
  killVerb,
  pauseVerb,
  resumeVerb,
  runVerb,
  startVerb,
} from './args/lifecycle-verbs.js';
import { newProgram, type Context } from './args/program.js';
import { messageOf, RuntimeError } from './sys/errors.js';

/** runc's verbs, in the order `kapsel --help` lists them (runc's own order). */
const VERBS = [
  createVerb,
  startVerb,
  runVerb,
  execVerb,
  stateVerb,
  killVerb,
  deleteVerb,
  psVerb,
  pauseVerb,
  resumeVerb,
  updateVerb,
  eventsVerb,
  listVerb,
  specVerb,
  featuresVerb,
];

/**
 * The runc-compatible command line: parses (args/), runs the verb
 * (commands/, one file each), and reports a failure as runc does. Returns
 * the exit status.
 */
export async function main(argv: readonly string[]): Promise<number> {
  const { program, ctx } = newProgram();
  for (const add of VERBS) add(program, ctx);
  addHiddenVerbs(program, ctx);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ctx.exitCode;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('commander.')) {
      // commander has printed help, the version or a usage error already.
      return code === 'commander.helpDisplayed' || code === 'commander.version' ? 0 : 1;
    }
    reportError(err, ctx);
    return err instanceof RuntimeError ? err.exitCode : 1;
  }
}

function reportError(err: unknown, ctx: Context): void {
  ctx.logger().error(messageOf(err));
  // Without --log, the logger writes to stderr already; with it, runc still
  // tells the person at the terminal.
  if (ctx.globals().log !== undefined) process.stderr.write(`kapsel: ${messageOf(err)}\n`);
}
