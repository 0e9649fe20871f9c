import type { BlockIOResources, ThrottleDevice, WeightDevice } from '../../resources.js';
import { SpecError } from '../error.js';
import { array, int, knownKeys, object, optInt, type Obj } from '../fields.js';
import { checkV1Only, type IgnoreSink } from './v1-only.js';

const THROTTLE_KEYS = [
  'throttleReadBpsDevice',
  'throttleWriteBpsDevice',
  'throttleReadIOPSDevice',
  'throttleWriteIOPSDevice',
] as const;

function device(v: unknown, field: string): { major: number; minor: number; o: Obj } {
  const o = object(v, field);
  return {
    major: int(o['major'], `${field}.major`, 0),
    minor: int(o['minor'], `${field}.minor`, 0),
    o,
  };
}

function throttles(v: unknown, field: string): ThrottleDevice[] {
  if (v === null) return [];
  return array(v, field).map((d, i) => {
    const f = `${field}[${i}]`;
    const { major, minor, o } = device(d, f);
    knownKeys(o, ['major', 'minor', 'rate'], f);
    return { major, minor, rate: int(o['rate'], `${f}.rate`, 0) };
  });
}

/** linux.resources.blockIO. A weight of 0 is "unset" (runc's fs2 isIoSet). */
export function validateBlockIO(v: unknown, field: string, ignore?: IgnoreSink): BlockIOResources {
  const o = object(v, field);
  knownKeys(o, ['weight', 'leafWeight', 'weightDevice', ...THROTTLE_KEYS], field);
  const out: BlockIOResources = {};
  // blkio.weight's range (10..1000).
  const weight = o['weight'] === null ? undefined : optInt(o, 'weight', field, 0, 1000);
  if (weight !== undefined && weight !== 0) {
    if (weight < 10)
      throw new SpecError(`${field}.weight`, `must be between 10 and 1000, got ${weight}`);
    out.weight = weight;
  }
  if (o['leafWeight'] !== null) optInt(o, 'leafWeight', field, 0, 1000);
  checkV1Only('blockIO.leafWeight', o['leafWeight'], `${field}.leafWeight`, ignore);
  if (o['weightDevice'] !== undefined && o['weightDevice'] !== null) {
    out.weightDevice = array(o['weightDevice'], `${field}.weightDevice`).map(
      (d, i): WeightDevice => {
        const f = `${field}.weightDevice[${i}]`;
        const { major, minor, o: wd } = device(d, f);
        knownKeys(wd, ['major', 'minor', 'weight', 'leafWeight'], f);
        if (wd['leafWeight'] !== null) optInt(wd, 'leafWeight', f, 0, 1000);
        checkV1Only(
          'blockIO.weightDevice[].leafWeight',
          wd['leafWeight'],
          `${f}.leafWeight`,
          ignore,
        );
        const w =
          wd['weight'] === null || wd['weight'] === 0
            ? undefined
            : optInt(wd, 'weight', f, 10, 1000);
        return w === undefined ? { major, minor } : { major, minor, weight: w };
      },
    );
  }
  for (const k of THROTTLE_KEYS) {
    if (o[k] !== undefined && o[k] !== null) out[k] = throttles(o[k], `${field}.${k}`);
  }
  return out;
}
