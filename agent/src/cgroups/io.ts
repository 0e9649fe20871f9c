import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { LinuxResources, ThrottleDevice } from '../../../oci/resources.js';
import { numberOf, readCgroupFile, writeCgroupFile } from './fs.js';
import type { Controller } from './types.js';
import type { BlkioEntry, BlkioStats } from '../../../proto/generated/agent.js';

/** blkio.weight (10..1000) to io.weight (1..10000): runc's ConvertBlkIOToIOWeightValue. */
export function blkioWeightToIoWeight(weight: number): number {
  if (weight === 0) return 0;
  return 1 + Math.floor(((weight - 10) * 9999) / 990);
}

const THROTTLES = [
  ['throttleReadBpsDevice', 'rbps'],
  ['throttleWriteBpsDevice', 'wbps'],
  ['throttleReadIOPSDevice', 'riops'],
  ['throttleWriteIOPSDevice', 'wiops'],
] as const;

/** "MAJ:MIN key=value"; a rate of 0 lifts the limit, as writing 0 did on cgroup v1. */
export function ioMaxLine(dev: ThrottleDevice, key: string): string {
  return `${dev.major}:${dev.minor} ${key}=${dev.rate === 0 ? 'max' : String(dev.rate)}`;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/**
 * blockIO: weights to io.bfq.weight when the BFQ scheduler offers it (its
 * own 1..1000 scale, like blkio.weight), else converted to io.weight, as runc
 * does; throttles to io.max, one device and key per write.
 */
export const ioController: Controller = {
  name: 'io',
  async apply(resources: LinuxResources, dir: string): Promise<void> {
    const io = resources.blockIO;
    if (io === undefined) return;
    const bfq = await exists(join(dir, 'io.bfq.weight'));
    if (io.weight !== undefined && io.weight !== 0) {
      const [file, value] = bfq
        ? ['io.bfq.weight', io.weight]
        : ['io.weight', blkioWeightToIoWeight(io.weight)];
      await writeCgroupFile(dir, file, String(value), 'linux.resources.blockIO.weight');
    }
    for (const [i, wd] of (io.weightDevice ?? []).entries()) {
      if (wd.weight === undefined) continue;
      const [file, value] = bfq
        ? ['io.bfq.weight', wd.weight]
        : ['io.weight', blkioWeightToIoWeight(wd.weight)];
      await writeCgroupFile(
        dir,
        file,
        `${wd.major}:${wd.minor} ${value}`,
        `linux.resources.blockIO.weightDevice[${i}]`,
      );
    }
    for (const [field, key] of THROTTLES) {
      for (const [i, dev] of (io[field] ?? []).entries()) {
        await writeCgroupFile(
          dir,
          'io.max',
          ioMaxLine(dev, key),
          `linux.resources.blockIO.${field}[${i}]`,
        );
      }
    }
  },
};

/**
 * io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" per device)
 * in blkio's shape, with the ops runc's v2 stats use: Read, Write.
 */
export function parseIoStat(text: string): BlkioStats {
  const bytes: BlkioEntry[] = [];
  const ios: BlkioEntry[] = [];
  for (const line of text.split('\n')) {
    const [dev, ...pairs] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (m === null) continue;
    const major = Number(m[1]);
    const minor = Number(m[2]);
    for (const pair of pairs) {
      const [key, value] = pair.split('=');
      const entry = (op: string): BlkioEntry => ({ major, minor, op, value: numberOf(value) });
      if (key === 'rbytes') bytes.push(entry('Read'));
      else if (key === 'wbytes') bytes.push(entry('Write'));
      else if (key === 'rios') ios.push(entry('Read'));
      else if (key === 'wios') ios.push(entry('Write'));
    }
  }
  return { ioServiceBytesRecursive: bytes, ioServicedRecursive: ios };
}

/** io.stat as blkio stats; undefined when the io controller is not enabled. */
export async function ioStats(dir: string): Promise<BlkioStats | undefined> {
  const text = await readCgroupFile(dir, 'io.stat');
  return text === undefined ? undefined : parseIoStat(text);
}
