import type { Command } from 'commander';
import { serveSandbox } from '../sandbox/serve.js';
import { runShim } from '../shim/shim.js';
import { RuntimeError } from '../sys/errors.js';
import type { Context } from './program.js';

/**
 * The verbs kapsel starts itself, detached (sys/detached.ts), never a
 * person: `__monitor` (the sandbox process of one VM; the name is kept for
 * processes already running) and `__shim` (the host side of one guest
 * process).
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

  program
    .command('__shim', { hidden: true })
    .argument('<container-id>')
    .requiredOption('--socket <path>')
    .option('--exec-id <id>', '', '')
    .option('--console-socket <path>')
    .action(async (id: string, o: { socket: string; execId: string; consoleSocket?: string }) => {
      await runShim({
        root: ctx.globals().root,
        socket: o.socket,
        id,
        execId: o.execId,
        log: ctx.logger(),
        ...(o.consoleSocket === undefined ? {} : { consoleSocket: o.consoleSocket }),
      });
    });
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new RuntimeError(`not a positive integer: ${value}`);
  return n;
}
