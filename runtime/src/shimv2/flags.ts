/**
 * The shim binary's command line as containerd gives it (runtime/v2/shim/
 * util.go Command, shim.go parseFlags): Go `flag` style, one or two dashes,
 * `-name value` or `-name=value`, then the action (`start`, `delete`, or
 * none: serve).
 *
 *   containerd-shim-kapsel-v2 -namespace NS -address ADDR -publish-binary BIN -id ID [-debug] start
 *   containerd-shim-kapsel-v2 -namespace NS -address ADDR -publish-binary BIN -id ID -bundle DIR delete
 */
export interface ShimFlags {
  namespace: string;
  /** containerd's gRPC socket, for the publish binary. */
  address: string;
  publishBinary: string;
  id: string;
  /** Where the bundle is when the working directory is not it (`delete`). */
  bundle: string;
  /** The ttrpc socket to serve (the forked shim). */
  socket: string;
  debug: boolean;
  version: boolean;
  action: string;
}

const STRING_FLAGS = {
  namespace: 'namespace',
  address: 'address',
  'publish-binary': 'publishBinary',
  id: 'id',
  bundle: 'bundle',
  socket: 'socket',
} as const;
const BOOL_FLAGS = { debug: 'debug', v: 'version' } as const;

export class FlagError extends Error {
  override readonly name = 'FlagError';
}

export function parseShimFlags(argv: readonly string[]): ShimFlags {
  const f: ShimFlags = {
    namespace: '',
    address: '',
    publishBinary: 'containerd',
    id: '',
    bundle: '',
    socket: '',
    debug: false,
    version: false,
    action: '',
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--') {
      i++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break;
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq < 0 ? body : body.slice(0, eq);
    if (name in BOOL_FLAGS) {
      const value = eq < 0 ? true : body.slice(eq + 1) !== 'false';
      f[BOOL_FLAGS[name as keyof typeof BOOL_FLAGS]] = value;
      continue;
    }
    if (!(name in STRING_FLAGS)) throw new FlagError(`flag provided but not defined: -${name}`);
    let value: string | undefined;
    if (eq >= 0) value = body.slice(eq + 1);
    else value = argv[++i];
    if (value === undefined) throw new FlagError(`flag needs an argument: -${name}`);
    f[STRING_FLAGS[name as keyof typeof STRING_FLAGS]] = value;
  }
  f.action = argv[i] ?? '';
  return f;
}
