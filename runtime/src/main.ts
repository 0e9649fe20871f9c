import { main } from './cli.js';
import { guardStdio } from './sys/broken-pipe.js';

guardStdio();

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // A foreground run leaves stdin being read; nothing else should keep us.
    setImmediate(() => process.exit(code));
  },
  (err: unknown) => {
    process.stderr.write(`kapsel: ${String(err)}\n`);
    process.exit(1);
  },
);
