// Shape checks shared by every part of the validator: each names the JSON
// path of the value it refuses, so a wrong type is a clear refusal instead
// of a TypeError deep in the code that uses it.
import { SpecError } from './error.js';

export type Obj = Record<string, unknown>;

/** JSON's type names, for "must be a list, got a string". */
export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'number') return 'a number';
  if (typeof v === 'boolean') return 'a boolean';
  return typeof v;
}

export function object(v: unknown, field: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new SpecError(field, `must be an object, got ${typeName(v)}`);
  }
  return v as Obj;
}

export function optObject(o: Obj, key: string, field: string): Obj | undefined {
  const v = o[key];
  return v === undefined || v === null ? undefined : object(v, `${field}.${key}`);
}

export function array(v: unknown, field: string): unknown[] {
  if (!Array.isArray(v)) throw new SpecError(field, `must be a list, got ${typeName(v)}`);
  return v;
}

/** A list of strings (null, as Go marshals an empty slice, is an empty list). */
export function strings(v: unknown, field: string): string[] {
  if (v === null) return [];
  return array(v, field).map((s, i) => str(s, `${field}[${i}]`));
}

export function str(v: unknown, field: string): string {
  if (typeof v !== 'string') throw new SpecError(field, `must be a string, got ${typeName(v)}`);
  return v;
}

export function optStr(o: Obj, key: string, field: string): string | undefined {
  return o[key] === undefined ? undefined : str(o[key], `${field}.${key}`);
}

export function bool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw new SpecError(field, `must be a boolean, got ${typeName(v)}`);
  return v;
}

export function optBool(o: Obj, key: string, field: string): boolean | undefined {
  return o[key] === undefined ? undefined : bool(o[key], `${field}.${key}`);
}

export function knownKeys(o: Obj, keys: readonly string[], field: string): void {
  for (const k of Object.keys(o)) {
    if (!keys.includes(k)) throw new SpecError(`${field}.${k}`, 'unknown field');
  }
}

/** An integer in [min, max]; a negative value below min is "must not be negative". */
export function int(v: unknown, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    throw new SpecError(field, `must be an integer, got ${JSON.stringify(v)}`);
  }
  if (v < min) {
    const what = min === -1 ? 'must be -1 (unlimited) or >= 0' : `must be >= ${min}`;
    throw new SpecError(field, `${what}, got ${v}`);
  }
  if (v > max) throw new SpecError(field, `must be <= ${max}, got ${v}`);
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

/** An absolute path (runtime-spec: destinations, masked paths, device paths). */
export function absPath(v: unknown, field: string): string {
  if (typeof v !== 'string' || !v.startsWith('/')) {
    throw new SpecError(field, `must be an absolute path, got ${JSON.stringify(v)}`);
  }
  return v;
}

/**
 * Whether an optional field is there: Go marshals nil slices and maps as
 * null, which the validator accepts as absent, so both count as absent.
 */
export function given<T>(v: T | null | undefined): v is T {
  return v !== undefined && v !== null;
}
