import { openSync, writeSync } from 'node:fs';
import { pino, type DestinationStream, type Logger } from 'pino';

export interface LogOptions {
  /** --log FILE: where runc-style logs go; stderr when absent. */
  file?: string;
  /** --log-format: text (default) or json. containerd reads the json one. */
  format: 'text' | 'json';
  debug: boolean;
}

const LEVEL_NAMES: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warning',
  50: 'error',
  60: 'fatal',
};

/**
 * A pino logger whose lines look like runc's (logrus): JSON
 * `{"level":"error","msg":"...","time":"..."}` or text
 * `time="..." level=error msg="..."`. containerd shows the last error line of
 * the JSON log to its user, so the shape matters.
 */
export function createLogger(opts: LogOptions): Logger {
  // Synchronous writes: the CLI exits right after reporting an error, and
  // the caller reads the log file as soon as we are gone.
  const fd = opts.file ? openSync(opts.file, 'a') : 2;
  const destination: DestinationStream = {
    write(line: string): void {
      writeSync(fd, reformat(line, opts.format));
    },
  };
  return pino(
    { level: opts.debug ? 'debug' : opts.file ? 'info' : 'warn', base: null, timestamp: false },
    destination,
  );
}

function reformat(line: string, format: 'text' | 'json'): string {
  const rec = JSON.parse(line) as Record<string, unknown>;
  const { level, msg, ...rest } = rec;
  const out: Record<string, unknown> = {
    level: LEVEL_NAMES[Number(level)] ?? 'info',
    msg: typeof msg === 'string' ? msg : '',
    ...flatten(rest),
    time: new Date().toISOString(),
  };
  if (format === 'json') return `${JSON.stringify(out)}\n`;
  const { time, level: lvl, msg: m, ...fields } = out;
  const extra = Object.entries(fields)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(' ');
  return `time=${JSON.stringify(time)} level=${String(lvl)} msg=${JSON.stringify(m)}${extra ? ` ${extra}` : ''}\n`;
}

function flatten(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (k === 'err' && typeof v === 'object' && v !== null) {
      out['error'] = (v as { message?: unknown }).message;
    } else {
      out[k] = v;
    }
  }
  return out;
}
