import { SpecError } from '../error.js';
import { str, type Obj } from '../fields.js';

/**
 * Parses a kernel cpu/node list ("0-3,5"); an empty string is an empty list.
 * @throws SpecError naming `field` on bad syntax
 */
export function parseCpuList(list: string, field: string): number[] {
  const out = new Set<number>();
  if (list.trim() === '') return [];
  for (const part of list.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (m === null) throw new SpecError(field, `${JSON.stringify(list)} is not a cpu list`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) throw new SpecError(field, `range ${part} goes backwards`);
    // Never expand an absurd range into memory.
    if (to - from > 65536) throw new SpecError(field, `range ${part} is too large`);
    for (let i = from; i <= to; i++) out.add(i);
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * cpu.cpus or cpu.mems: a kernel list; with `available` (the guest's, known
 * only there) naming only CPUs or nodes it has. "" is unset, as in runc.
 */
export function checkCpuList(
  o: Obj,
  key: 'cpus' | 'mems',
  field: string,
  available: readonly number[] | undefined,
): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  const list = str(v, `${field}.${key}`);
  if (list === '') return undefined;
  const wanted = parseCpuList(list, `${field}.${key}`);
  const missing = available === undefined ? [] : wanted.filter((c) => !available.includes(c));
  if (available !== undefined && missing.length > 0) {
    const what = key === 'cpus' ? 'CPUs' : 'memory nodes';
    const has = available.length === 0 ? 'none' : available.join(',');
    throw new SpecError(
      `${field}.${key}`,
      `${JSON.stringify(list)} names ${what} the guest does not have (it has ${has})`,
    );
  }
  return list;
}
