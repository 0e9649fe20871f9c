// The guest's entry point (/opt/kapsel/agent-boot.cjs): runs the agent's
// CommonJS bundle (agent.cjs) compiled with a V8 code cache
// (agent.cjs.cache) that rootfs/build.sh made on the host, so the guest's
// emulated CPU does not parse and compile the 1.4 MB bundle at every start.
// Node 20 has no compile cache of its own (module.enableCompileCache is
// Node 22), and a startup snapshot cannot hold grpc-js: its http2 and
// http_parser bindings are not serializable (docs/light-sandboxes.md).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire, wrap } from 'node:module';
import { dirname, join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Script } from 'node:vm';
import { pathToFileURL } from 'node:url';
import { markStart } from './marks.js';
import { CODE_CACHE_STATUS_KEY, type CodeCacheStatus } from './status.js';

/** Where the cache of `script` is looked for: next to it, `.cache` added. */
export function cachePathOf(script: string): string {
  return `${script}.cache`;
}

/**
 * Compiles `script` (a CommonJS file) with the code cache at `cache` when
 * there is one, and returns a function that runs it as a module. V8 rejects
 * a cache made by another V8 version or with other V8 flags (its header
 * holds both hashes: src/snapshot/code-serializer.cc, SerializedCodeData::
 * SanityCheck) and then compiles from source: the result is the same
 * program either way, only slower.
 */
export function compileWithCache(
  script: string,
  cache: string,
): { run: () => void; status: CodeCacheStatus; compiled: Script } {
  const source = readFileSync(script, 'utf8');
  const cachedData = existsSync(cache) ? readFileSync(cache) : undefined;
  const compiled = new Script(wrap(source), { filename: script, cachedData });
  const status: CodeCacheStatus =
    cachedData === undefined
      ? 'missing'
      : compiled.cachedDataRejected === true
        ? 'rejected'
        : 'accepted';
  const run = (): void => {
    const fn = compiled.runInThisContext() as (
      exports: unknown,
      require: NodeJS.Require,
      module: { exports: unknown },
      filename: string,
      dirname: string,
    ) => void;
    const mod = { exports: {} };
    fn.call(mod.exports, mod.exports, createRequire(script), mod, script, dirname(script));
  };
  return { run, status, compiled };
}

/**
 * `agent-boot.cjs [AGENT ARGS]` runs the agent; `agent-boot.cjs
 * --produce-code-cache OUT --listen unix:SOCK` runs it standalone until it
 * listens on SOCK, then writes the code cache of everything compiled so far
 * (the whole start path, not only the bundle's top level) to OUT and exits.
 * Flags given to node must be the guest's (init's AGENT_NODE_FLAGS), or V8
 * rejects the cache there.
 */
function boot(argv: readonly string[]): void {
  markStart('loader');
  const dir = dirname(process.argv[1] ?? '.');
  // kapsel.agent_start= on the kernel command line, for measuring what the
  // cache gains (bench/agent-start.ts): `mjs` runs the ES module bundle as
  // init did before, `nocache` compiles agent.cjs from source.
  const how = process.env['KAPSEL_AGENT_START'];
  if (how === 'mjs') {
    void import(pathToFileURL(join(dir, 'agent.mjs')).href);
    return;
  }
  // The agent sets --expose-gc at start (oci/process/idle-memory.ts), and V8 stamps a cache
  // with the hash of its flags when it is written: set it before compiling,
  // so a cache written after the agent started matches the flags of a
  // start that has not set it yet.
  setFlagsFromString('--expose-gc');
  const script = join(dir, 'agent.cjs');
  const produce = argv[0] === '--produce-code-cache' ? argv[1] : undefined;
  const agentArgs = produce === undefined ? argv : argv.slice(2);
  if (produce === '') throw new Error('--produce-code-cache: missing the output path');
  const { run, status, compiled } = compileWithCache(
    script,
    produce === undefined && how !== 'nocache' ? cachePathOf(script) : '/nonexistent',
  );
  markStart('compiled');
  (globalThis as Record<string, unknown>)[CODE_CACHE_STATUS_KEY] = status;
  process.argv = [process.argv[0] ?? 'node', script, ...agentArgs];
  run();
  if (produce !== undefined) waitThenWrite(produce, agentArgs, compiled);
}

const LISTEN_WAIT_MS = 30_000;

function waitThenWrite(out: string, agentArgs: readonly string[], compiled: Script): void {
  const listen = agentArgs[agentArgs.indexOf('--listen') + 1] ?? '';
  const sock = listen.replace(/^unix:/, '');
  if (!agentArgs.includes('--listen') || sock === '') {
    throw new Error('--produce-code-cache: needs --listen unix:SOCK to know when the agent is up');
  }
  const deadline = Date.now() + LISTEN_WAIT_MS;
  const poll = (): void => {
    if (existsSync(sock)) {
      writeFileSync(out, compiled.createCachedData());
      process.stderr.write(`agent-boot: wrote the code cache ${out}\n`);
      process.exit(0);
    }
    if (Date.now() > deadline) {
      process.stderr.write(`--produce-code-cache: the agent did not listen on ${sock} in time\n`);
      process.exit(1);
    }
    setTimeout(poll, 20);
  };
  poll();
}

boot(process.argv.slice(2));
