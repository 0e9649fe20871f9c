import { Option, type Command } from 'commander';
import { events } from '../commands/events.js';
import { features } from '../commands/features.js';
import { list } from '../commands/list.js';
import { ps } from '../commands/ps.js';
import { spec } from '../commands/spec.js';
import { state } from '../commands/state.js';
import { update } from '../commands/update.js';
import type { UpdateFlags } from './update-flags.js';
import { verb, type Context } from './program.js';

// runc's verbs that look at containers, change their limits, or describe
// the runtime: each declares its flags and hands them to commands/.

export function stateVerb(program: Command, ctx: Context): void {
  verb(program, 'state', 'output the state of a container')
    .argument('<container-id>')
    .action(async (id: string) => {
      await state(ctx.globals().root, id);
    });
}

export function psVerb(program: Command, ctx: Context): void {
  verb(program, 'ps', 'list processes running inside a container (guest pids)')
    .argument('<container-id>')
    .addOption(
      new Option('-f, --format <format>', 'output format')
        .choices(['table', 'json'])
        .default('table'),
    )
    .action(async (id: string, o: { format: string }) => {
      await ps(ctx.globals().root, id, o.format);
    });
}

export function updateVerb(program: Command, ctx: Context): void {
  verb(program, 'update', 'update the resource limits of a container')
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
    .option('--kernel-memory <size>', 'kernel memory limit (ignored on cgroup v2, as by runc)')
    .option(
      '--kernel-memory-tcp <size>',
      'kernel TCP buffer limit (ignored on cgroup v2, as by runc)',
    )
    .option('--pids-limit <n>', 'maximum number of pids')
    .action(async (id: string, o: UpdateFlags) => {
      await update(ctx.globals().root, id, o, ctx.logger());
    });
}

export function eventsVerb(program: Command, ctx: Context): void {
  verb(program, 'events', 'display container events and statistics')
    .argument('<container-id>')
    .option('--stats', 'print the statistics once and exit', false)
    .option('--interval <duration>', 'statistics interval', '5s')
    .action(async (id: string, o: { stats: boolean; interval: string }) => {
      await events(ctx.globals().root, id, o.stats, o.interval);
    });
}

export function listVerb(program: Command, ctx: Context): void {
  verb(program, 'list', 'list containers started by kapsel with the given root')
    .alias('ls')
    .addOption(
      new Option('-f, --format <format>', 'output format')
        .choices(['table', 'json'])
        .default('table'),
    )
    .option('-q, --quiet', 'display only container ids', false)
    .action(async (o: { format: string; quiet: boolean }) => {
      await list(ctx.globals().root, o.format, o.quiet);
    });
}

export function specVerb(program: Command): void {
  verb(program, 'spec', 'create a new specification file (config.json)')
    .option('-b, --bundle <dir>', 'path to the root of the bundle directory', '.')
    .option('--rootless', 'accepted for runc compatibility', false)
    .action(async (o: { bundle: string }) => {
      await spec(o.bundle);
    });
}

export function featuresVerb(program: Command): void {
  verb(program, 'features', 'show the enabled features').action(() => {
    features();
  });
}
