import type { Command } from 'commander';
import { serveSandbox } from '../sandbox/serve.js';
import { RuntimeError } from '../sys/errors.js';
import type { Context } from './program.js';

/**
 * The verb kapsel starts itself, detached (sys/detached.ts), never a
 * person: `__monitor` (the sandbox process of one VM; the name is kept for
 * processes already running). The host side of one guest process, the
 * shim, is a C program (native/host/shim.c, shim/spawn.ts).
 */
export function addHiddenVerbs(program: Command, ctx: Context): void {
  program
    .command('__monitor', { hidden: true })
    .argument('<sandbox-id>')
    .requiredOption('--memory-mib <n>', 'guest memory', positiveInt)
    .requiredOption('--cpus <n>', 'guest vCPUs', positiveInt)
    .action(async (sandboxId: string, o: { memoryMib: number; cpus: number }) => {
      ctx.exitCode = await serveSandbox(ctx.globals().root, sandboxId, ctx.logger(), {
        memoryMiB: o.memoryMib,
        cpus: o.cpus,
      });
    });
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new RuntimeError(`not a positive integer: ${value}`);
  return n;
}
