// Checks linux.resources (from the spec or an UpdateContainer) before any
// cgroup is touched: every refusal names the field, so bad input fails fast
// and leaves nothing behind.
import type {
  BlockIOResources,
  CpuResources,
  DeviceCgroupRule,
  HugepageLimit,
  LinuxResources,
  MemoryResources,
  PidsResources,
  ThrottleDevice,
  WeightDevice,
} from '../../../oci/resources.js';
import { invalidArgument } from '../errors.js';
import { parseCpuList } from './cpuset.js';
import { swapMaxValue } from './memory.js';

/** What the guest has, for checking cpuset requests against. */
export interface HostLimits {
  /** Online CPUs the container cgroups may use (the parent's cpuset.cpus.effective). */
  cpus: readonly number[];
  /** Memory nodes likewise. */
  mems: readonly number[];
}

const F = 'linux.resources';

type Obj = Record<string, unknown>;

function object(v: unknown, field: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw invalidArgument(`${field}: must be an object`);
  }
  return v as Obj;
}

function array(v: unknown, field: string): unknown[] {
  if (!Array.isArray(v)) throw invalidArgument(`${field}: must be a list`);
  return v;
}

function knownKeys(o: Obj, keys: readonly string[], field: string): void {
  for (const k of Object.keys(o)) {
    if (!keys.includes(k)) throw invalidArgument(`${field}.${k}: unknown field`);
  }
}

/** An integer in [min, max]; a negative value below min is "must not be negative". */
function int(v: unknown, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
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

function optInt(o: Obj, key: string, field: string, min: number, max?: number): number | undefined {
  return o[key] === undefined ? undefined : int(o[key], `${field}.${key}`, min, max);
}

function memory(v: unknown): MemoryResources {
  const field = `${F}.memory`;
  const o = object(v, field);
  knownKeys(
    o,
    [
      'limit',
      'reservation',
      'swap',
      'kernel',
      'kernelTCP',
      'swappiness',
      'disableOOMKiller',
      'useHierarchy',
      'checkBeforeUpdate',
    ],
    field,
  );
  const out: MemoryResources = {};
  const set = (k: 'limit' | 'reservation' | 'swap'): void => {
    const n = optInt(o, k, field, -1);
    if (n !== undefined) out[k] = n;
  };
  set('limit');
  set('reservation');
  set('swap');
  // Kernel memory is accounted with the rest on cgroup v2; runc ignores it.
  optInt(o, 'kernel', field, -1);
  if (optInt(o, 'kernelTCP', field, -1) !== undefined && o['kernelTCP'] !== 0) {
    throw invalidArgument(`${field}.kernelTCP: not supported on cgroup v2`);
  }
  // cgroup v2 has no per-cgroup swappiness file; any valid value is what
  // the guest does anyway (runc accepts it the same way).
  optInt(o, 'swappiness', field, 0, 100);
  if (o['disableOOMKiller'] !== undefined && typeof o['disableOOMKiller'] !== 'boolean') {
    throw invalidArgument(`${field}.disableOOMKiller: must be a boolean`);
  }
  if (o['disableOOMKiller'] === true) {
    throw invalidArgument(`${field}.disableOOMKiller: cgroup v2 cannot disable the OOM killer`);
  }
  swapMaxValue(out);
  return out;
}

function cpuList(
  o: Obj,
  key: 'cpus' | 'mems',
  field: string,
  available: readonly number[],
): string | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw invalidArgument(`${field}.${key}: must be a string`);
  const wanted = parseCpuList(v, `${field}.${key}`);
  const missing = wanted.filter((c) => !available.includes(c));
  if (missing.length > 0) {
    const what = key === 'cpus' ? 'CPUs' : 'memory nodes';
    throw invalidArgument(
      `${field}.${key}: ${JSON.stringify(v)} names ${what} the guest does not have (it has ${formatList(available)})`,
    );
  }
  return v;
}

function formatList(list: readonly number[]): string {
  return list.length === 0 ? 'none' : list.join(',');
}

function cpu(v: unknown, limits: HostLimits): CpuResources {
  const field = `${F}.cpu`;
  const o = object(v, field);
  knownKeys(
    o,
    [
      'shares',
      'quota',
      'burst',
      'period',
      'realtimeRuntime',
      'realtimePeriod',
      'cpus',
      'mems',
      'idle',
    ],
    field,
  );
  const out: CpuResources = {};
  // The kernel's cgroup v1 range; 0 is "unset".
  const shares = optInt(o, 'shares', field, 0, 262144);
  if (shares !== undefined) out.shares = shares;
  const quota = optInt(o, 'quota', field, -1);
  if (quota !== undefined) {
    // The kernel refuses quotas under 1 ms (EINVAL on cpu.max); say why here.
    if (quota > 0 && quota < 1000)
      throw invalidArgument(`${field}.quota: must be >= 1000 (µs), got ${quota}`);
    out.quota = quota;
  }
  if (o['period'] !== undefined) {
    const period = int(o['period'], `${field}.period`, 0);
    // 1 ms .. 1 s: the kernel's bounds for a CFS bandwidth period.
    if (period < 1000 || period > 1_000_000) {
      throw invalidArgument(
        `${field}.period: must be between 1000 and 1000000 (µs), got ${period}`,
      );
    }
    out.period = period;
  }
  const burst = optInt(o, 'burst', field, 0);
  if (burst !== undefined) out.burst = burst;
  for (const k of ['realtimeRuntime', 'realtimePeriod'] as const) {
    if (o[k] !== undefined && o[k] !== 0) {
      throw invalidArgument(`${field}.${k}: realtime scheduling is not supported on cgroup v2`);
    }
  }
  const idle = optInt(o, 'idle', field, 0, 1);
  if (idle !== undefined) out.idle = idle;
  const cpus = cpuList(o, 'cpus', field, limits.cpus);
  if (cpus !== undefined) out.cpus = cpus;
  const mems = cpuList(o, 'mems', field, limits.mems);
  if (mems !== undefined) out.mems = mems;
  return out;
}

function pids(v: unknown): PidsResources {
  const field = `${F}.pids`;
  const o = object(v, field);
  knownKeys(o, ['limit'], field);
  return { limit: int(o['limit'], `${field}.limit`, -1) };
}

function device(v: unknown, field: string): { major: number; minor: number; o: Obj } {
  const o = object(v, field);
  return {
    major: int(o['major'], `${field}.major`, 0),
    minor: int(o['minor'], `${field}.minor`, 0),
    o,
  };
}

function throttles(v: unknown, field: string): ThrottleDevice[] {
  return array(v, field).map((d, i) => {
    const f = `${field}[${i}]`;
    const { major, minor, o } = device(d, f);
    knownKeys(o, ['major', 'minor', 'rate'], f);
    return { major, minor, rate: int(o['rate'], `${f}.rate`, 0) };
  });
}

function blockIO(v: unknown): BlockIOResources {
  const field = `${F}.blockIO`;
  const o = object(v, field);
  const throttleKeys = [
    'throttleReadBpsDevice',
    'throttleWriteBpsDevice',
    'throttleReadIOPSDevice',
    'throttleWriteIOPSDevice',
  ] as const;
  knownKeys(o, ['weight', 'leafWeight', 'weightDevice', ...throttleKeys], field);
  const out: BlockIOResources = {};
  // blkio.weight's range (10..1000); 0 is "unset".
  const weight = optInt(o, 'weight', field, 0, 1000);
  if (weight !== undefined && weight !== 0) {
    if (weight < 10)
      throw invalidArgument(`${field}.weight: must be between 10 and 1000, got ${weight}`);
    out.weight = weight;
  }
  if (o['leafWeight'] !== undefined && o['leafWeight'] !== 0) {
    throw invalidArgument(`${field}.leafWeight: not supported on cgroup v2`);
  }
  if (o['weightDevice'] !== undefined) {
    out.weightDevice = array(o['weightDevice'], `${field}.weightDevice`).map(
      (d, i): WeightDevice => {
        const f = `${field}.weightDevice[${i}]`;
        const { major, minor, o: wd } = device(d, f);
        knownKeys(wd, ['major', 'minor', 'weight', 'leafWeight'], f);
        const w = optInt(wd, 'weight', f, 10, 1000);
        return w === undefined ? { major, minor } : { major, minor, weight: w };
      },
    );
  }
  for (const k of throttleKeys) {
    if (o[k] !== undefined) out[k] = throttles(o[k], `${field}.${k}`);
  }
  return out;
}

function hugepages(v: unknown): HugepageLimit[] {
  const field = `${F}.hugepageLimits`;
  return array(v, field).map((h, i) => {
    const f = `${field}[${i}]`;
    const o = object(h, f);
    knownKeys(o, ['pageSize', 'limit'], f);
    const pageSize = o['pageSize'];
    if (typeof pageSize !== 'string' || !/^\d+[KMG]B$/.test(pageSize)) {
      throw invalidArgument(`${f}.pageSize: must look like "2MB", got ${JSON.stringify(pageSize)}`);
    }
    return { pageSize, limit: int(o['limit'], `${f}.limit`, 0) };
  });
}

/** Files a container must not set through unified: they are the manager's. */
const RESERVED = new Set([
  'cgroup.procs',
  'cgroup.threads',
  'cgroup.subtree_control',
  'cgroup.freeze',
  'cgroup.kill',
  'cgroup.type',
]);

function unified(v: unknown): Record<string, string> {
  const field = `${F}.unified`;
  const o = object(v, field);
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(o)) {
    const f = `${field}[${JSON.stringify(key)}]`;
    // A plain "controller.file" name: never a path that leaves the cgroup.
    if (!/^[a-z_]+\.[\w.]+$/.test(key) || key.includes('..')) {
      throw invalidArgument(`${f}: not a cgroup file name`);
    }
    if (RESERVED.has(key)) throw invalidArgument(`${f}: managed by the agent`);
    if (typeof value !== 'string') throw invalidArgument(`${f}: value must be a string`);
    out[key] = value;
  }
  return out;
}

function devices(v: unknown): DeviceCgroupRule[] {
  const field = `${F}.devices`;
  return array(v, field).map((d, i) => {
    const f = `${field}[${i}]`;
    const o = object(d, f);
    knownKeys(o, ['allow', 'type', 'major', 'minor', 'access'], f);
    if (typeof o['allow'] !== 'boolean') throw invalidArgument(`${f}.allow: must be a boolean`);
    const rule: DeviceCgroupRule = { allow: o['allow'] };
    const type = o['type'];
    if (type !== undefined) {
      if (type !== 'a' && type !== 'c' && type !== 'b') {
        throw invalidArgument(`${f}.type: must be "a", "c" or "b", got ${JSON.stringify(type)}`);
      }
      rule.type = type;
    }
    const major = optInt(o, 'major', f, -1);
    if (major !== undefined) rule.major = major;
    const minor = optInt(o, 'minor', f, -1);
    if (minor !== undefined) rule.minor = minor;
    const access = o['access'];
    if (access !== undefined) {
      if (typeof access !== 'string' || !/^[rwm]+$/.test(access)) {
        throw invalidArgument(
          `${f}.access: must be letters of "rwm", got ${JSON.stringify(access)}`,
        );
      }
      rule.access = access;
    }
    return rule;
  });
}

/** Validates linux.resources; absent means nothing to set. */
export function validateResources(value: unknown, limits: HostLimits): LinuxResources {
  if (value === undefined || value === null) return {};
  const o = object(value, F);
  knownKeys(
    o,
    ['devices', 'memory', 'cpu', 'pids', 'blockIO', 'hugepageLimits', 'unified', 'network', 'rdma'],
    F,
  );
  const out: LinuxResources = {};
  if (o['devices'] !== undefined) out.devices = devices(o['devices']);
  if (o['memory'] !== undefined) out.memory = memory(o['memory']);
  if (o['cpu'] !== undefined) out.cpu = cpu(o['cpu'], limits);
  if (o['pids'] !== undefined) out.pids = pids(o['pids']);
  if (o['blockIO'] !== undefined) out.blockIO = blockIO(o['blockIO']);
  if (o['hugepageLimits'] !== undefined) out.hugepageLimits = hugepages(o['hugepageLimits']);
  if (o['unified'] !== undefined) out.unified = unified(o['unified']);
  const network = o['network'];
  if (network !== undefined && Object.keys(object(network, `${F}.network`)).length > 0) {
    throw invalidArgument(`${F}.network: net_cls/net_prio do not exist on cgroup v2`);
  }
  const rdma = o['rdma'];
  if (rdma !== undefined && Object.keys(object(rdma, `${F}.rdma`)).length > 0) {
    throw invalidArgument(`${F}.rdma: rdma limits are not supported yet`);
  }
  return out;
}
