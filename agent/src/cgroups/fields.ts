// The checks every controller's validate uses on linux.resources: each
// refusal names the field, so bad input fails fast and leaves nothing behind.
import { invalidArgument } from '../errors.js';

/** The prefix of every field name in a refusal. */
export const F = 'linux.resources';

export type Obj = Record<string, unknown>;

export function object(v: unknown, field: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw invalidArgument(`${field}: must be an object`);
  }
  return v as Obj;
}

export function array(v: unknown, field: string): unknown[] {
  if (!Array.isArray(v)) throw invalidArgument(`${field}: must be a list`);
  return v;
}

export function knownKeys(o: Obj, keys: readonly string[], field: string): void {
  for (const k of Object.keys(o)) {
    if (!keys.includes(k)) throw invalidArgument(`${field}.${k}: unknown field`);
  }
}

/** An integer in [min, max]; a negative value below min is "must not be negative". */
export function int(v: unknown, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    throw invalidArgument(`${field}: must be an integer, got ${JSON.stringify(v)}`);
  }
  if (v < min) {
    const what = min === -1 ? 'must be -1 (unlimited) or >= 0' : `must be >= ${min}`;
    throw invalidArgument(`${field}: ${what}, got ${v}`);
  }
  if (v > max) throw invalidArgument(`${field}: must be <= ${max}, got ${v}`);
  return v;
}

export function optInt(
  o: Obj,
  key: string,
  field: string,
  min: number,
  max?: number,
): number | undefined {
  return o[key] === undefined ? undefined : int(o[key], `${field}.${key}`, min, max);
}
