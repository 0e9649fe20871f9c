import { deleteCommand } from './delete.js';
import { FlagError, parseShimFlags } from './flags.js';
import { serveCommand } from './serve.js';
import { startCommand } from './start.js';
import { VERSION } from '../version.js';

/**
 * containerd-shim-kapsel-v2: containerd's shim v2 for kapsel
 * (`io.containerd.kapsel.v2`). See docs/containerd-shim.md.
 */
async function main(argv: string[]): Promise<number> {
  const f = parseShimFlags(argv);
  if (f.version) {
    process.stdout.write(`containerd-shim-kapsel-v2:\n  Version:  ${VERSION}\n`);
    return 0;
  }
  if (f.namespace === '') throw new FlagError('shim namespace cannot be empty');
  switch (f.action) {
    case 'start':
      return startCommand(f);
    case 'delete':
      return deleteCommand(f);
    case '':
      if (f.socket === '') throw new FlagError('serving needs -socket (containerd runs `start`)');
      return serveCommand(f);
    default:
      throw new FlagError(`unknown action ${JSON.stringify(f.action)}: want start or delete`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    setImmediate(() => process.exit(code));
  },
  (err: unknown) => {
    process.stderr.write(
      `containerd-shim-kapsel-v2: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    process.exit(1);
  },
);
