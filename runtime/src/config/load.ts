import { readFileSync } from 'node:fs';
import { parse, TomlError } from 'smol-toml';
import { RuntimeError } from '../sys/errors.js';
import { SCHEMA, type Key, type Settings, type Source } from './schema.js';

/**
 * Where kapsel looks for its configuration when neither `--config` nor
 * KAPSEL_CONFIG names a file: the first that exists wins, as Kata reads
 * /etc/kata-containers/configuration.toml before the packaged
 * /usr/share/defaults/kata-containers/configuration.toml. Neither is needed.
 */
export const DEFAULT_CONFIG_PATHS: readonly string[] = [
  '/etc/kapsel/config.toml',
  '/usr/share/defaults/kapsel/config.toml',
];

/** The environment variable naming the configuration file (as `--config`). */
export const CONFIG_ENV = 'KAPSEL_CONFIG';

/** A configuration mistake: the file, the key and what was expected. */
export class ConfigError extends RuntimeError {}

export interface LoadOptions {
  /** A file named by `--config` (or the shim's ConfigPath): it must exist. */
  file?: string | undefined;
  /** The environment: KAPSEL_CONFIG and each key's override. */
  env?: NodeJS.ProcessEnv;
  /** Tried in order when no file is named; default DEFAULT_CONFIG_PATHS. */
  defaultPaths?: readonly string[];
}

export interface LoadedSettings {
  settings: Settings;
  /** `section.key` -> where its value came from. */
  sources: Readonly<Record<string, Source>>;
  /** The file that was read, if any. */
  file?: string;
}

type Table = Record<string, unknown>;

/**
 * The effective settings: each key from its environment variable when that
 * is set and not empty, else from the file, else its default (SCHEMA).
 * The file is `opts.file`, else $KAPSEL_CONFIG, else the first of the
 * default paths that exists. Throws ConfigError for a named file that
 * cannot be read, TOML that does not parse, an unknown section or key, a
 * value of the wrong type or range (naming the file, `section.key` and what
 * was expected), and an environment override that is not a valid value.
 */
export function loadSettings(opts: LoadOptions = {}): LoadedSettings {
  const env = opts.env ?? process.env;
  const named = nonEmpty(opts.file) ?? nonEmpty(env[CONFIG_ENV]);
  const found =
    named === undefined ? firstExisting(opts.defaultPaths ?? DEFAULT_CONFIG_PATHS) : undefined;
  const file = named ?? found?.file;
  const fromFile =
    file === undefined
      ? {}
      : fileValues(file, named !== undefined ? readNamed(file) : (found?.text ?? ''));
  const out: Record<string, Record<string, unknown>> = {};
  const sources: Record<string, Source> = {};
  const problems: string[] = [];
  for (const [section, keys] of Object.entries(SCHEMA)) {
    const values: Record<string, unknown> = (out[section] = {});
    for (const [name, key] of Object.entries(keys as Record<string, Key<unknown>>)) {
      const id = `${section}.${name}`;
      const raw = key.env === undefined ? undefined : nonEmpty(env[key.env]);
      if (raw !== undefined) {
        const v = key.fromEnv(raw);
        if (v === undefined)
          problems.push(`${key.env ?? id}: expected ${key.expected}, got ${JSON.stringify(raw)}`);
        values[name] = v;
        sources[id] = 'env';
      } else if (id in fromFile) {
        // "" for a path is its default, so an example file can list every key.
        values[name] = fromFile[id] === '' ? key.default : fromFile[id];
        sources[id] = 'file';
      } else {
        values[name] = key.default;
        sources[id] = 'default';
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems.join('; '));
  return { settings: out as unknown as Settings, sources, ...(file === undefined ? {} : { file }) };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

function readNamed(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `config ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`,
      1,
      { cause: err },
    );
  }
}

function firstExisting(paths: readonly string[]): { file: string; text: string } | undefined {
  for (const file of paths) {
    try {
      return { file, text: readFileSync(file, 'utf8') };
    } catch (err) {
      // Absent is fine (the defaults); present but unreadable is not.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new ConfigError(`config ${file}: ${(err as Error).message}`, 1, { cause: err });
    }
  }
  return undefined;
}

/** The file's values by `section.key`, each checked against SCHEMA. */
function fileValues(file: string, text: string): Record<string, unknown> {
  let doc: Table;
  try {
    doc = parse(text);
  } catch (err) {
    if (err instanceof TomlError) {
      const what = (err.message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '');
      throw new ConfigError(`config ${file}: line ${err.line}, column ${err.column}: ${what}`, 1, {
        cause: err,
      });
    }
    throw err;
  }
  const values: Record<string, unknown> = {};
  const problems: string[] = [];
  const sections = Object.keys(SCHEMA);
  for (const [section, body] of Object.entries(doc)) {
    const keys = (SCHEMA as Record<string, Record<string, Key<unknown>> | undefined>)[section];
    if (keys === undefined) {
      problems.push(
        `unknown ${isTable(body) ? 'section' : 'key'} ${JSON.stringify(section)} (sections: ${sections.join(', ')})`,
      );
      continue;
    }
    if (!isTable(body)) {
      problems.push(`${section}: expected a table [${section}], got ${describe(body)}`);
      continue;
    }
    for (const [name, v] of Object.entries(body)) {
      const key = keys[name];
      if (key === undefined) {
        problems.push(
          `unknown key ${section}.${name} (keys of [${section}]: ${Object.keys(keys).join(', ')})`,
        );
        continue;
      }
      const parsed = key.fromToml(v);
      if (parsed === undefined)
        problems.push(`${section}.${name}: expected ${key.expected}, got ${describe(v)}`);
      else values[`${section}.${name}`] = parsed;
    }
  }
  if (problems.length > 0) throw new ConfigError(`config ${file}: ${problems.join('; ')}`);
  return values;
}

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function describe(v: unknown): string {
  if (isTable(v)) return 'a table';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Date) return `the date ${v.toISOString()}`;
  if (typeof v === 'bigint') return v.toString();
  return JSON.stringify(v);
}
