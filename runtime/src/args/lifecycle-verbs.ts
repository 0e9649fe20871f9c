import type { Command } from 'commander';
import { create } from '../commands/create.js';
import { deleteContainer } from '../commands/delete.js';
import { exec } from '../commands/exec.js';
import { kill } from '../commands/kill.js';
import { pause } from '../commands/pause.js';
import { resume } from '../commands/resume.js';
import { run } from '../commands/run.js';
import { start } from '../commands/start.js';
import type { ExecFlags } from '../container/exec-process.js';
import { collect, verb, type Context } from './program.js';

// runc's verbs that make, run and end containers and their processes: each
// declares its flags and hands them to its file in commands/.

export function createVerb(program: Command, ctx: Context): void {
  verb(program, 'create', 'create a container (in a new VM, or in its pod sandbox)')
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
          ctx.globals().root,
          id,
          {
            bundle: o.bundle,
            preserveFds: Number(o.preserveFds),
            systemdCgroup: ctx.globals().systemdCgroup,
            ...(o.pidFile === undefined ? {} : { pidFile: o.pidFile }),
            ...(o.consoleSocket === undefined ? {} : { consoleSocket: o.consoleSocket }),
          },
          ctx.logger(),
          ctx.globals().debug,
        );
      },
    );
}

export function startVerb(program: Command, ctx: Context): void {
  verb(program, 'start', 'start a created container')
    .argument('<container-id>')
    .action(async (id: string) => {
      await start(ctx.globals().root, id, ctx.logger());
    });
}

export function runVerb(program: Command, ctx: Context): void {
  verb(program, 'run', 'create and start a container')
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
        ctx.exitCode = await run({
          root: ctx.globals().root,
          bundle: o.bundle,
          id,
          detach: o.detach,
          keep: o.keep,
          debug: ctx.globals().debug,
          systemdCgroup: ctx.globals().systemdCgroup,
          log: ctx.logger(),
          ...(o.pidFile === undefined ? {} : { pidFile: o.pidFile }),
          ...(o.consoleSocket === undefined ? {} : { consoleSocket: o.consoleSocket }),
        });
      },
    );
}

export function execVerb(program: Command, ctx: Context): void {
  verb(program, 'exec', 'execute a new process inside the container')
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
      ctx.exitCode = await exec(ctx.globals().root, id, command, o, ctx.logger());
    });
}

export function killVerb(program: Command, ctx: Context): void {
  verb(program, 'kill', 'send a signal to the container process (default: SIGTERM)')
    .argument('<container-id>')
    .argument('[signal]', 'signal name or number', 'SIGTERM')
    .option('-a, --all', 'send the signal to every process of the container', false)
    .action(async (id: string, signal: string, o: { all: boolean }) => {
      await kill(ctx.globals().root, id, signal, o.all);
    });
}

export function deleteVerb(program: Command, ctx: Context): void {
  verb(program, 'delete', 'delete any resources held by the container')
    .argument('<container-id>')
    .option('-f, --force', 'forcibly delete the container if it is still running', false)
    .action(async (id: string, o: { force: boolean }) => {
      await deleteContainer(ctx.globals().root, id, o.force, ctx.logger());
    });
}

export function pauseVerb(program: Command, ctx: Context): void {
  verb(program, 'pause', 'suspend all processes of a container')
    .argument('<container-id>')
    .action(async (id: string) => {
      await pause(ctx.globals().root, id);
    });
}

export function resumeVerb(program: Command, ctx: Context): void {
  verb(program, 'resume', 'resume all processes of a paused container')
    .argument('<container-id>')
    .action(async (id: string) => {
      await resume(ctx.globals().root, id);
    });
}
