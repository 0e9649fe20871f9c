// Bundles the guest bench program (bench-agent.ts) into one file, as
// scripts/bundle.mjs does for the agent (koffi stays external: the image
// has it next to the agent). Usage: node bench/guest/bundle.mjs OUTFILE
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
await build({
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  banner: {
    js: "import { createRequire as __kapselCreateRequire } from 'node:module'; const require = __kapselCreateRequire(import.meta.url);",
  },
  entryPoints: [join(here, 'bench-agent.ts')],
  outfile: process.argv[2],
  external: ['koffi'],
  logLevel: 'warning',
});
