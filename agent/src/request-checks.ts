// The shape of every request, checked before a handler acts on it: each
// field of agent.proto by its proto name, with the limits the guest can
// honour. The JSON documents inside requests (oci_spec_json, process_json,
// resources_json) are parsed and checked where they are used; here only
// their size.
import { isAbsolute, normalize } from 'node:path';
import { isIPv4 } from 'node:net';
import { CONTAINER_ID_MAX_LENGTH, isValidContainerId } from '../../proto/contract.js';
import type {
  RestoreGuestRequest,
  AddARPNeighborsRequest,
  CloseStdinRequest,
  CreateContainerRequest,
  ExecProcessRequest,
  ReadStreamRequest,
  SetupDNSRelayRequest,
  SignalProcessRequest,
  Storage,
  TtyWinResizeRequest,
  UpdateContainerRequest,
  UpdateInterfaceRequest,
  UpdateRoutesRequest,
  WaitProcessRequest,
  WriteStreamRequest,
} from '../../proto/generated/agent.js';
import { invalidArgument } from './errors.js';

/** Limits of the fields, in bytes or entries. */
export const LIMITS = {
  /** A whole config.json; runc has none, Kata's agent takes gRPC's 4 MiB message. */
  specJson: 2 << 20,
  /** An OCI process; the kernel's ARG_MAX for args and env together is 2 MiB at most. */
  processJson: 2 << 20,
  resourcesJson: 64 << 10,
  /** One WriteStdin; more is sent in several. */
  stdinChunk: 1 << 20,
  storages: 64,
  /** PATH_MAX with its NUL. */
  path: 4095,
  /** The mount data the kernel copies: one page, with its NUL. */
  mountData: 4095,
  /** virtio-fs: the tag is at most 36 bytes (virtio spec 5.11.4, struct virtio_fs_config); 9p less. */
  shareTag: 36,
  routes: 1024,
  neighbors: 1024,
  addresses: 256,
  /** The highest signal number on Linux x86 (SIGRTMAX, signal(7)). */
  signal: 64,
  /** struct winsize holds unsigned shorts (tty_ioctl(4)). */
  winsize: 0xffff,
} as const;

/** A string field, of at most max UTF-16 units (requests are text, so bytes >= units). */
function str(field: string, value: unknown, max: number): string {
  if (typeof value !== 'string') throw invalidArgument(`${field}: must be a string`);
  if (value.length > max) {
    throw invalidArgument(`${field}: ${value.length} characters, more than the ${max} allowed`);
  }
  return value;
}

function noNul(field: string, value: string): void {
  if (value.includes('\0')) throw invalidArgument(`${field}: contains a NUL byte`);
}

/** A container id as runc takes it (proto/contract.ts). */
export function checkContainerId(field: string, value: unknown): void {
  const id = str(field, value, Number.MAX_SAFE_INTEGER);
  if (!isValidContainerId(id)) {
    const shown =
      id.length > 64
        ? `${JSON.stringify(id.slice(0, 64))}... (${id.length} characters)`
        : JSON.stringify(id);
    throw invalidArgument(
      `${field}: invalid id ${shown}: ${
        id.length > CONTAINER_ID_MAX_LENGTH
          ? `longer than ${CONTAINER_ID_MAX_LENGTH} characters`
          : 'must match ^[\\w+\\-.]+$ and not be "." or ".."'
      }`,
    );
  }
}

/** An exec id: '' addresses the container's init, anything else is an id as runc's. */
function checkExecId(field: string, value: unknown, allowInit: boolean): void {
  if (value === '' && allowInit) return;
  checkContainerId(field, value);
}

function uint(field: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw invalidArgument(`${field}: must be an integer 0..${max}, got ${String(value)}`);
  }
  return value;
}

function bool(field: string, value: unknown): void {
  if (typeof value !== 'boolean') throw invalidArgument(`${field}: must be a boolean`);
}

function list(field: string, value: unknown, max: number): readonly unknown[] {
  if (!Array.isArray(value)) throw invalidArgument(`${field}: must be a list`);
  if (value.length > max) {
    throw invalidArgument(`${field}: ${value.length} entries, more than the ${max} allowed`);
  }
  return value as unknown[];
}

function object(field: string, value: unknown): void {
  if (typeof value !== 'object' || value === null) throw invalidArgument(`${field}: missing`);
}

/** A path the agent creates or mounts on: absolute, clean (no "..", no "//"), not "/". */
function checkAbsolutePath(field: string, value: unknown): void {
  const p = str(field, value, LIMITS.path);
  noNul(field, p);
  if (!isAbsolute(p)) throw invalidArgument(`${field}: must be absolute, got ${JSON.stringify(p)}`);
  const clean = normalize(p).replace(/(.)\/$/, '$1');
  if (clean !== p || p.split('/').includes('..')) {
    throw invalidArgument(
      `${field}: must be a clean path (${JSON.stringify(clean)}), got ${JSON.stringify(p)}`,
    );
  }
  if (p === '/') throw invalidArgument(`${field}: must not be /`);
}

/** A storage, before anything of it is made: its mount point is created only after. */
function checkStorage(field: string, s: Storage): void {
  object(field, s);
  const driver = str(`${field}.driver`, s.driver, 16);
  checkAbsolutePath(`${field}.mount_point`, s.mountPoint);
  const options = list(`${field}.options`, s.options, 64);
  options.forEach((o, i) => {
    const opt = str(`${field}.options[${i}]`, o, LIMITS.mountData);
    noNul(`${field}.options[${i}]`, opt);
    if (opt.includes(',')) throw invalidArgument(`${field}.options[${i}]: must not contain ','`);
  });
  if ((options as string[]).join(',').length > LIMITS.mountData) {
    throw invalidArgument(
      `${field}.options: longer than the ${LIMITS.mountData} bytes of mount data`,
    );
  }
  switch (driver) {
    case 'virtiofs':
    case '9p': {
      const tag = str(`${field}.source`, s.source, LIMITS.shareTag);
      noNul(`${field}.source`, tag);
      if (tag === '') throw invalidArgument(`${field}.source: the ${driver} tag is missing`);
      if (driver === '9p') {
        // The agent mounts the tag once under a directory named for it (storage.ts).
        if (!/^[\w.-]{1,31}$/.test(tag) || tag === '.' || tag === '..') {
          throw invalidArgument(
            `${field}.source: a 9p tag is 1-31 of [A-Za-z0-9_.-], not . or .. (got ${JSON.stringify(tag)})`,
          );
        }
        // Without it the kernel's default transport is a TCP connection.
        if (!options.includes('trans=virtio')) {
          throw invalidArgument(`${field}.options: a 9p storage needs trans=virtio`);
        }
      }
      break;
    }
    case 'bind':
      if (options.length > 0) {
        throw invalidArgument(`${field}.options: a bind storage takes none`);
      }
      checkAbsolutePath(`${field}.source`, s.source);
      break;
    default:
      throw invalidArgument(`${field}.driver: unknown storage driver ${JSON.stringify(driver)}`);
  }
}

export function checkCreateContainer(r: CreateContainerRequest): void {
  checkContainerId('container_id', r.containerId);
  str('oci_spec_json', r.ociSpecJson, LIMITS.specJson);
  const storages = list('storages', r.storages, LIMITS.storages) as readonly Storage[];
  const points = new Set<string>();
  storages.forEach((s, i) => {
    checkStorage(`storages[${i}]`, s);
    if (points.has(s.mountPoint)) {
      throw invalidArgument(`storages[${i}].mount_point: ${s.mountPoint} is used twice`);
    }
    points.add(s.mountPoint);
  });
  if (r.sandboxContainerId !== '') checkContainerId('sandbox_container_id', r.sandboxContainerId);
}

/** Requests that carry only container_id. */
export function checkContainerOnly(r: { containerId: string }): void {
  checkContainerId('container_id', r.containerId);
}

/** WaitProcess, ReadStdout/ReadStderr, CloseStdin: a container and one of its processes. */
export function checkProcessRef(
  r: WaitProcessRequest | ReadStreamRequest | CloseStdinRequest,
): void {
  checkContainerId('container_id', r.containerId);
  checkExecId('exec_id', r.execId, true);
}

export function checkExecProcess(r: ExecProcessRequest): void {
  checkContainerId('container_id', r.containerId);
  checkExecId('exec_id', r.execId, false);
  str('process_json', r.processJson, LIMITS.processJson);
}

export function checkSignalProcess(r: SignalProcessRequest): void {
  checkProcessRef(r);
  uint('signal', r.signal, LIMITS.signal);
  bool('all', r.all);
  if (r.all && r.execId !== '') {
    throw invalidArgument('exec_id: must be empty with all (every process of the container)');
  }
}

export function checkTtyWinResize(r: TtyWinResizeRequest): void {
  checkProcessRef(r);
  uint('rows', r.rows, LIMITS.winsize);
  uint('columns', r.columns, LIMITS.winsize);
}

export function checkWriteStdin(r: WriteStreamRequest): void {
  checkProcessRef(r);
  if (!(r.data instanceof Uint8Array)) throw invalidArgument('data: must be bytes');
  if (r.data.length > LIMITS.stdinChunk) {
    throw invalidArgument(
      `data: ${r.data.length} bytes, more than the ${LIMITS.stdinChunk} of one write`,
    );
  }
}

export function checkUpdateContainer(r: UpdateContainerRequest): void {
  checkContainerId('container_id', r.containerId);
  str('resources_json', r.resourcesJson, LIMITS.resourcesJson);
}

export function checkUpdateInterface(r: UpdateInterfaceRequest): void {
  checkContainerId('container_id', r.containerId);
  if (r.interface !== undefined) {
    str('interface.name', r.interface.name, 64);
    str('interface.hw_addr', r.interface.hwAddr, 64);
    list('interface.ip_addresses', r.interface.ipAddresses, LIMITS.addresses);
  }
}

export function checkUpdateRoutes(r: UpdateRoutesRequest): void {
  checkContainerId('container_id', r.containerId);
  list('routes', r.routes, LIMITS.routes);
}

export function checkAddArpNeighbors(r: AddARPNeighborsRequest): void {
  checkContainerId('container_id', r.containerId);
  list('neighbors', r.neighbors, LIMITS.neighbors);
}

export function checkSetupDnsRelay(r: SetupDNSRelayRequest): void {
  checkContainerId('container_id', r.containerId);
  const address = str('listen_address', r.listenAddress, 15);
  if (!isIPv4(address)) {
    throw invalidArgument(`listen_address: not an IPv4 address: ${JSON.stringify(address)}`);
  }
}

/** Entropy a guest is reseeded with: at least a CRNG key's worth, at most a page. */
export const RESTORE_ENTROPY_BYTES = { min: 32, max: 512 };

export function checkRestoreGuest(r: RestoreGuestRequest): void {
  const n = r.entropy.length;
  if (n < RESTORE_ENTROPY_BYTES.min || n > RESTORE_ENTROPY_BYTES.max) {
    throw invalidArgument(
      `entropy: ${n} bytes, expected ${RESTORE_ENTROPY_BYTES.min}..${RESTORE_ENTROPY_BYTES.max}`,
    );
  }
  if (!Number.isSafeInteger(r.realtimeUs) || r.realtimeUs <= 0) {
    throw invalidArgument(`realtime_us: must be a positive time, got ${String(r.realtimeUs)}`);
  }
  uint('share_wait_ms', r.shareWaitMs, 600_000);
}

/** Requests without fields (Check, GetGuestDetails, GetEvents, DestroySandbox). */
export function noFields(): void {
  // An empty message has nothing to refuse; undecodable ones are refused before.
}
