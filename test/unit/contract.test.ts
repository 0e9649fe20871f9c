// The constants the C side keeps its own copies of, held to the TypeScript
// definitions: C cannot import them, so this test reads the C source.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  FLAG_NO_NEW_PRIVS,
  FLAG_READONLY_ROOT,
  Msg,
  RECORD_SIZE,
  REQ_MAGIC,
  Tag,
} from '../../agent/src/native/protocol.js';
import { AGENT_PORT_NAME } from '../../proto/contract.js';

const ROOT = join(import.meta.dirname, '../..');
const source = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

/** `PREFIX_NAME = N` entries of a C enum, as { NAME: N }. */
function cEnum(text: string, name: string, prefix: string): Record<string, number> {
  const body = new RegExp(`enum ${name} \\{([^}]*)\\}`).exec(text)?.[1];
  if (body === undefined) throw new Error(`enum ${name} not found`);
  const out: Record<string, number> = {};
  for (const m of body.matchAll(new RegExp(`${prefix}(\\w+)\\s*=\\s*(\\d+)`, 'g'))) {
    out[m[1] ?? ''] = Number(m[2]);
  }
  return out;
}

/** The value of `#define NAME value` (numbers as numbers, strings unquoted). */
function cDefine(text: string, name: string): string | number | undefined {
  const v = new RegExp(`#define ${name}\\s+(\\S+)`).exec(text)?.[1];
  if (v === undefined) return undefined;
  if (v.startsWith('"')) return v.slice(1, -1);
  return Number(v.replace(/u$/, ''));
}

/** newNs -> NEW_NS */
const upperSnake = (camel: string): string => camel.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();

describe('native/lib/protocol.h matches agent/src/native/protocol.ts', () => {
  const h = source('native/lib/protocol.h');

  it('has the same spawn request tags', () => {
    const fromTs = Object.fromEntries(Object.entries(Tag).map(([k, v]) => [upperSnake(k), v]));
    expect(cEnum(h, 'kapsel_req_tag', 'KAPSEL_REQ_')).toEqual(fromTs);
  });

  it('has the same request magic and flags', () => {
    expect(cDefine(h, 'KAPSEL_REQ_MAGIC')).toBe(REQ_MAGIC);
    expect(cDefine(h, 'KAPSEL_FLAG_READONLY_ROOT')).toBe(FLAG_READONLY_ROOT);
    expect(cDefine(h, 'KAPSEL_FLAG_NO_NEW_PRIVS')).toBe(FLAG_NO_NEW_PRIVS);
  });

  it('has the same record types Node reads and writes, and record size', () => {
    const c = cEnum(h, 'kapsel_msg_type', 'KAPSEL_MSG_');
    for (const [k, v] of Object.entries(Msg)) expect(c[upperSnake(k)], k).toBe(v);
    expect(cDefine(h, 'KAPSEL_RECORD_SIZE')).toBe(RECORD_SIZE);
  });

  it('names a file that exists in its first line', () => {
    const first = h.split('\n')[0] ?? '';
    for (const path of first.match(/[\w/-]+\.(?:ts|c|h)\b/g) ?? []) {
      expect(() => source(path), path).not.toThrow();
    }
  });
});

describe('proto/contract.ts matches the C copies', () => {
  it('the floor init opens the agent port by the same name', () => {
    expect(cDefine(source('native/init/floor.c'), 'PORT_NAME')).toBe(AGENT_PORT_NAME);
  });
});
