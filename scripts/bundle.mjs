// Bundles the CLI and the guest agent into single files under build/dist.
// koffi stays external: it carries a native binary that the guest image
// copies next to the agent.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
// Bundled CommonJS dependencies (grpc-js) call require(); give ESM one.
const banner = {
  js: "import { createRequire as __kapselCreateRequire } from 'node:module'; const require = __kapselCreateRequire(import.meta.url);",
};
// The agent serves gRPC and is never a client: its bundles take only the
// server half of grpc-js (agent/src/grpc/server-only.ts).
const grpcServerOnly = {
  name: 'grpc-server-only',
  setup(b) {
    b.onResolve({ filter: /^@grpc\/grpc-js$/ }, () => ({
      path: join(root, 'agent/src/grpc/server-only.ts'),
    }));
  },
};
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: 'linked',
  banner,
  define: { KAPSEL_VERSION: JSON.stringify(version) },
  logLevel: 'warning',
  // V8 keeps a script's whole source in its heap (functions compile
  // lazily from it): the bundle's size is resident in every sandbox
  // process, shim v2 and guest agent (the agent's in every template clone's
  // RAM). Whitespace and syntax minified: kapsel.mjs 1.67 -> 1.06 MB,
  // agent.cjs 1.33 -> 0.85 MB, 1.6 MiB less per pod (bench:pods, ten pods;
  // docs/light-sandboxes.md). Names are kept, so stack traces still name
  // functions; the linked source maps give lines (node --enable-source-maps).
  minifyWhitespace: true,
  minifySyntax: true,
};
await build({
  ...common,
  entryPoints: [join(root, 'agent/src/main.ts')],
  outfile: join(root, 'build/dist/agent.mjs'),
  external: ['koffi'],
  plugins: [grpcServerOnly],
});
// The guest runs the agent as CommonJS through a boot loader that compiles
// it with a V8 code cache (agent/src/boot/code-cache.ts): vm.Script takes
// cached data, ES modules in Node 20 do not. import.meta.url (ffi.ts) has
// no CommonJS equivalent: it becomes the file's URL.
const cjs = {
  ...common,
  format: 'cjs',
  banner: { js: "var __kapselImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  define: { ...common.define, 'import.meta.url': '__kapselImportMetaUrl' },
};
await build({
  ...cjs,
  entryPoints: [join(root, 'agent/src/main.ts')],
  outfile: join(root, 'build/dist/agent.cjs'),
  external: ['koffi'],
  plugins: [grpcServerOnly],
});
await build({
  ...cjs,
  entryPoints: [join(root, 'agent/src/boot/code-cache.ts')],
  outfile: join(root, 'build/dist/agent-boot.cjs'),
});
await build({
  ...common,
  entryPoints: [join(root, 'runtime/src/main.ts')],
  outfile: join(root, 'build/dist/kapsel.mjs'),
  // The shim loads koffi only for --console-socket; it resolves from node_modules.
  external: ['koffi'],
});
await build({
  ...common,
  entryPoints: [join(root, 'runtime/src/shimv2/main.ts')],
  outfile: join(root, 'build/dist/shimv2.mjs'),
  external: ['koffi'],
});
