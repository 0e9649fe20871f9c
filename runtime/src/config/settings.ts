import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { CONFIG_ENV, loadSettings, type LoadedSettings } from './load.js';
import type { Settings } from './schema.js';

let loaded: LoadedSettings | undefined;
let logger: Logger | undefined;
let reported = false;

/**
 * `--config FILE` (or the shim's ConfigPath): this process reads FILE, and
 * so does every kapsel it starts (the sandbox process, the shims), since
 * the path goes into KAPSEL_CONFIG, which they inherit. Made absolute: a
 * child may run from another directory. Call before the first settings().
 */
export function useConfigFile(file: string | undefined): void {
  if (file === undefined || file === '') return;
  process.env[CONFIG_ENV] = resolve(file);
  loaded = undefined;
  reported = false;
}

/**
 * Where the effective settings are logged (at debug level) once they are
 * read: the `--debug` logger of the command.
 */
export function reportSettingsTo(log: Logger): void {
  logger = log;
  if (loaded !== undefined) report(loaded);
}

/**
 * The effective settings of this process (config/load.ts), read on first
 * use and kept: one read of the file and the environment per process.
 * Throws ConfigError on a configuration mistake, every time it is asked.
 */
export function settings(): Settings {
  return loadedSettings().settings;
}

export function loadedSettings(): LoadedSettings {
  if (loaded === undefined) {
    loaded = loadSettings();
    report(loaded);
  }
  return loaded;
}

function report(l: LoadedSettings): void {
  if (logger === undefined || reported) return;
  reported = true;
  const effective: Record<string, string> = {};
  for (const [section, keys] of Object.entries(l.settings)) {
    for (const [key, value] of Object.entries(keys as Record<string, unknown>)) {
      const id = `${section}.${key}`;
      const shown = typeof value === 'string' && value !== '' ? value : JSON.stringify(value);
      effective[id] = `${shown} (${l.sources[id] ?? 'default'})`;
    }
  }
  logger.debug({ config: l.file ?? 'none', ...effective }, 'effective settings');
}
