/**
 * A small seeded generator (mulberry32) so that a failing fuzz case
 * reproduces: the seed is printed with the test and taken from
 * KAPSEL_FUZZ_SEED when set.
 */
export class Rng {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(items: readonly T[]): T {
    const item = items[this.int(items.length)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

export function fuzzSeed(): number {
  const env = process.env['KAPSEL_FUZZ_SEED'];
  return env === undefined ? 20261129 : Number(env);
}

/** protobuf varint encoding (of a non-negative number below 2^53). */
function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Buffer.from(out);
}

/**
 * A protobuf message of random fields: field numbers 1..8 with random wire
 * types (varints where strings belong, strings where numbers belong,
 * lengths that lie, groups), or plain random bytes.
 */
export function randomProtobuf(rng: Rng): Buffer {
  if (rng.int(4) === 0) return rng.bytes(rng.int(64));
  const parts: Buffer[] = [];
  const fields = rng.int(6);
  for (let i = 0; i < fields; i++) {
    const field = 1 + rng.int(8);
    const wire = rng.pick([0, 1, 2, 2, 2, 3, 5, 7]);
    parts.push(varint(field * 8 + wire));
    switch (wire) {
      case 0:
        parts.push(varint(rng.pick([0, 1, 9, 65, 65536, 2 ** 32 - 1, 2 ** 53 - 1])));
        break;
      case 1:
        parts.push(rng.bytes(8));
        break;
      case 2: {
        const len = rng.int(40);
        // Sometimes a length longer than what follows.
        parts.push(varint(rng.int(5) === 0 ? len + 1000 : len));
        parts.push(
          rng.int(2) === 0 ? rng.bytes(len) : Buffer.from(rng.pick(ID_LIKE).slice(0, len)),
        );
        break;
      }
      case 5:
        parts.push(rng.bytes(4));
        break;
      default:
        break;
    }
  }
  return Buffer.concat(parts);
}

/** Strings that look like ids, good and bad. */
export const ID_LIKE = [
  'nope',
  'c1',
  '.',
  '..',
  '../x',
  'a/b',
  '-x',
  'a b',
  'x'.repeat(255),
  'x'.repeat(256),
  'é',
  '\u0000',
  'a\nb',
  '',
  '*',
] as const;
