// The byte formats of native/lib/protocol.h: the spawn request and the
// fixed-size records on the control socket. Change both sides together.
// Integers are in host byte order (encoder and decoder share the machine).
import { endianness } from 'node:os';
import type { NamespaceKind, SpawnRequest } from './types.js';

const LE = endianness() === 'LE';

export const CLONE_FLAGS: Readonly<Record<NamespaceKind, number>> = {
  mount: 0x00020000, // CLONE_NEWNS
  cgroup: 0x02000000, // CLONE_NEWCGROUP
  uts: 0x04000000, // CLONE_NEWUTS
  ipc: 0x08000000, // CLONE_NEWIPC
  pid: 0x20000000, // CLONE_NEWPID
  network: 0x40000000, // CLONE_NEWNET
  user: 0x10000000, // CLONE_NEWUSER
};

export const REQ_MAGIC = 'KPS1';
export const Tag = {
  newNs: 1,
  joinNs: 2,
  rootfs: 3,
  mount: 4,
  hostname: 5,
  arg: 6,
  env: 7,
  cwd: 8,
  uid: 9,
  gid: 10,
  group: 11,
  umask: 12,
  flags: 13,
  rootPropagation: 14,
  cgroup: 15,
  terminal: 16,
  caps: 17,
  rlimit: 18,
  oomScoreAdj: 19,
  masked: 20,
  readonly: 21,
  sysctl: 22,
  device: 23,
  seccomp: 24,
  seccompArch: 25,
  seccompRule: 26,
  uidMap: 27,
  gidMap: 28,
} as const;

export const FLAG_READONLY_ROOT = 0x1;
export const FLAG_NO_NEW_PRIVS = 0x4;

/** A u64 as the two u32 words (low, high) the C side reassembles. */
function u64(v: bigint): [number, number] {
  if (v < 0n || v > 0xffffffffffffffffn) throw new RangeError(`not a u64: ${v}`);
  return [Number(v & 0xffffffffn), Number(v >> 32n)];
}

class Writer {
  private readonly parts: Buffer[] = [Buffer.from(REQ_MAGIC, 'latin1')];

  field(tag: number, ...payload: (number | string)[]): void {
    const bytes = payload.map((p) => (typeof p === 'number' ? u32(p) : cstring(p)));
    const len = bytes.reduce((n, b) => n + b.length, 0);
    const header = Buffer.alloc(8);
    writeU32(header, tag, 0);
    writeU32(header, len, 4);
    this.parts.push(header, ...bytes);
  }

  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function writeU32(buf: Buffer, v: number, off: number): void {
  if (LE) buf.writeUInt32LE(v >>> 0, off);
  else buf.writeUInt32BE(v >>> 0, off);
}

function u32(v: number): Buffer {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RangeError(`not a u32: ${v}`);
  }
  const b = Buffer.alloc(4);
  writeU32(b, v, 0);
  return b;
}

function cstring(s: string): Buffer {
  if (s.includes('\0')) throw new RangeError(`NUL byte in ${JSON.stringify(s)}`);
  return Buffer.from(`${s}\0`, 'utf8');
}

function cloneFlags(kinds: readonly NamespaceKind[]): number {
  return kinds.reduce((acc, k) => (acc | CLONE_FLAGS[k]) >>> 0, 0);
}

/** Encodes a request for kapsel_spawn(); throws RangeError on values C cannot take. */
export function encodeSpawnRequest(req: SpawnRequest): Buffer {
  const w = new Writer();
  w.field(Tag.newNs, cloneFlags(req.namespaces));
  for (const j of req.joinNamespaces ?? []) w.field(Tag.joinNs, CLONE_FLAGS[j.kind], j.path);
  if (req.rootfs !== undefined) w.field(Tag.rootfs, req.rootfs);
  for (const m of req.mounts) {
    w.field(Tag.mount, m.flags, m.propagation ?? 0, m.source, m.target, m.fstype, m.data);
  }
  if (req.hostname !== undefined) w.field(Tag.hostname, req.hostname);
  for (const a of req.args) w.field(Tag.arg, a);
  for (const e of req.env) w.field(Tag.env, e);
  w.field(Tag.cwd, req.cwd);
  w.field(Tag.uid, req.uid);
  w.field(Tag.gid, req.gid);
  for (const g of req.additionalGids ?? []) w.field(Tag.group, g);
  if (req.umask !== undefined) w.field(Tag.umask, req.umask);
  const flags =
    (req.readonlyRootfs === true ? FLAG_READONLY_ROOT : 0) |
    (req.noNewPrivileges === true ? FLAG_NO_NEW_PRIVS : 0);
  if (flags !== 0) w.field(Tag.flags, flags);
  if (req.rootPropagation !== undefined) w.field(Tag.rootPropagation, req.rootPropagation);
  if (req.cgroup !== undefined) w.field(Tag.cgroup, req.cgroup);
  if (req.terminal !== undefined) w.field(Tag.terminal, req.terminal.rows, req.terminal.cols);
  const c = req.capabilities;
  if (c !== undefined) {
    w.field(
      Tag.caps,
      ...[c.bounding, c.effective, c.permitted, c.inheritable, c.ambient].flatMap(u64),
    );
  }
  for (const r of req.rlimits ?? [])
    w.field(Tag.rlimit, r.resource, ...u64(r.soft), ...u64(r.hard));
  if (req.oomScoreAdj !== undefined) w.field(Tag.oomScoreAdj, req.oomScoreAdj >>> 0);
  for (const p of req.maskedPaths ?? []) w.field(Tag.masked, p);
  for (const p of req.readonlyPaths ?? []) w.field(Tag.readonly, p);
  for (const s of req.sysctl ?? []) w.field(Tag.sysctl, s.key, s.value);
  for (const d of req.devices ?? []) {
    w.field(Tag.device, d.mode, d.major, d.minor, d.uid, d.gid, d.path);
  }
  const sc = req.seccomp;
  if (sc !== undefined) {
    w.field(Tag.seccomp, sc.defaultAction, sc.flags);
    for (const a of sc.architectures) w.field(Tag.seccompArch, a);
    for (const r of sc.rules) {
      const args = r.args.flatMap((a) => [a.index, a.op, ...u64(a.value), ...u64(a.valueTwo)]);
      w.field(Tag.seccompRule, r.action, r.args.length, ...args, r.name);
    }
  }
  if (req.uidMap !== undefined) w.field(Tag.uidMap, req.uidMap);
  if (req.gidMap !== undefined) w.field(Tag.gidMap, req.gidMap);
  return w.done();
}

// ---- Records (struct kapsel_record) ----

export const RECORD_SIZE = 1024;

export const Msg = {
  ready: 1,
  error: 2,
  started: 3,
  exited: 4,
  start: 16,
  signal: 17,
} as const;

export interface ControlRecord {
  type: number;
  value: number;
  err: number;
  syscall: string;
  path: string;
  message: string;
}

const SYSCALL_OFF = 16;
const PATH_OFF = 48;
const MESSAGE_OFF = 528;

function readI32(buf: Buffer, off: number): number {
  return LE ? buf.readInt32LE(off) : buf.readInt32BE(off);
}

function readCString(buf: Buffer, start: number, end: number): string {
  const nul = buf.indexOf(0, start);
  return buf.toString('utf8', start, nul >= 0 && nul < end ? nul : end);
}

export function decodeRecord(buf: Buffer): ControlRecord {
  return {
    type: readI32(buf, 0),
    value: readI32(buf, 4),
    err: readI32(buf, 8),
    syscall: readCString(buf, SYSCALL_OFF, PATH_OFF),
    path: readCString(buf, PATH_OFF, MESSAGE_OFF),
    message: readCString(buf, MESSAGE_OFF, RECORD_SIZE),
  };
}

export function encodeCommand(type: number, value = 0): Buffer {
  const buf = Buffer.alloc(RECORD_SIZE);
  if (LE) {
    buf.writeInt32LE(type, 0);
    buf.writeInt32LE(value, 4);
  } else {
    buf.writeInt32BE(type, 0);
    buf.writeInt32BE(value, 4);
  }
  return buf;
}

/** Cuts a byte stream into whole records. */
export class RecordReader {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): ControlRecord[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: ControlRecord[] = [];
    while (this.pending.length >= RECORD_SIZE) {
      out.push(decodeRecord(this.pending.subarray(0, RECORD_SIZE)));
      this.pending = this.pending.subarray(RECORD_SIZE);
    }
    return out;
  }
}

/** Decodes a raw wait(2) status the way the shell reports it. */
export function decodeWaitStatus(status: number): { exitCode: number; signal: number } {
  const sig = status & 0x7f;
  if (sig === 0) return { exitCode: (status >> 8) & 0xff, signal: 0 };
  return { exitCode: 128 + sig, signal: sig };
}
