// The eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE) that enforces device rules
// on cgroup v2, generated the way runc's libcontainer/cgroups/devices/
// devicefilter does (crun's ebpf.c is the same program in C). The kernel
// runs it on every open(2)/mknod(2) of a device node with
//   struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
// where access_type = access << 16 | type, and allows the access when it
// returns 1.

/** A resolved rule: type 'a' | 'c' | 'b', -1 for any major/minor, access bits. */
export interface DeviceRule {
  allow: boolean;
  type: 'a' | 'c' | 'b';
  major: number;
  minor: number;
  /** Letters of "rwm". */
  access: string;
}

// include/uapi/linux/bpf.h
const DEV_BLOCK = 1; // BPF_DEVCG_DEV_BLOCK
const DEV_CHAR = 2; // BPF_DEVCG_DEV_CHAR
const ACC_MKNOD = 1; // BPF_DEVCG_ACC_MKNOD
const ACC_READ = 2; // BPF_DEVCG_ACC_READ
const ACC_WRITE = 4; // BPF_DEVCG_ACC_WRITE
const ACC_ALL = ACC_MKNOD | ACC_READ | ACC_WRITE;

// Opcodes (class | op | source), include/uapi/linux/bpf_common.h and bpf.h.
const LDX_MEM_W = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_K = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
const ALU32_MOV_X = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const JMP_JEQ_K = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JMP_JNE_K = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JMP_JNE_X = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const JMP_EXIT = 0x95; // BPF_JMP | BPF_EXIT

const R0 = 0;
const R1 = 1;
const R2 = 2;
const R3 = 3;
const R4 = 4;
const R5 = 5;

/** One struct bpf_insn; `next` marks a jump to the end of the rule's block. */
interface Insn {
  code: number;
  dst: number;
  src: number;
  off: number | 'next';
  imm: number;
}

const insn = (code: number, dst: number, src: number, off: number | 'next', imm: number): Insn => ({
  code,
  dst,
  src,
  off,
  imm,
});

export function accessBits(access: string): number {
  let bits = 0;
  if (access.includes('m')) bits |= ACC_MKNOD;
  if (access.includes('r')) bits |= ACC_READ;
  if (access.includes('w')) bits |= ACC_WRITE;
  return bits;
}

function ruleBlock(rule: DeviceRule): Insn[] {
  const block: Insn[] = [];
  if (rule.type !== 'a') {
    block.push(insn(JMP_JNE_K, R2, 0, 'next', rule.type === 'c' ? DEV_CHAR : DEV_BLOCK));
  }
  const bits = accessBits(rule.access);
  if (bits !== ACC_ALL) {
    block.push(insn(ALU32_MOV_X, R1, R3, 0, 0), insn(ALU32_AND_K, R1, 0, 0, bits));
    // An allow rule matches when every requested bit is allowed (runc's
    // test); a deny rule when any requested bit is denied, so that denying
    // "w" also stops an O_RDWR open that an earlier allow-all would pass.
    block.push(rule.allow ? insn(JMP_JNE_X, R1, R3, 'next', 0) : insn(JMP_JEQ_K, R1, 0, 'next', 0));
  }
  if (rule.major !== -1) block.push(insn(JMP_JNE_K, R4, 0, 'next', rule.major));
  if (rule.minor !== -1) block.push(insn(JMP_JNE_K, R5, 0, 'next', rule.minor));
  block.push(insn(ALU32_MOV_K, R0, 0, 0, rule.allow ? 1 : 0), insn(JMP_EXIT, 0, 0, 0, 0));
  return block.map((ins, i) => (ins.off === 'next' ? { ...ins, off: block.length - i - 1 } : ins));
}

/**
 * The program for rules in spec order: the last matching rule decides (the
 * blocks are emitted last rule first and the first match returns), and a
 * device no rule matches is denied.
 */
export function deviceFilterProgram(rules: readonly DeviceRule[]): Buffer {
  const prog: Insn[] = [
    // R2 = type (low 16 bits of access_type), R3 = access (high 16 bits)
    insn(LDX_MEM_W, R2, R1, 0, 0),
    insn(ALU32_AND_K, R2, 0, 0, 0xffff),
    insn(LDX_MEM_W, R3, R1, 0, 0),
    insn(ALU32_RSH_K, R3, 0, 0, 16),
    // R4 = major, R5 = minor
    insn(LDX_MEM_W, R4, R1, 4, 0),
    insn(LDX_MEM_W, R5, R1, 8, 0),
  ];
  let unconditional = false;
  for (let i = rules.length - 1; i >= 0 && !unconditional; i--) {
    const block = ruleBlock(rules[i] as DeviceRule);
    prog.push(...block);
    // A rule matching everything (e.g. runc spec's leading "deny a rwm")
    // decides alone: what comes before it is unreachable, and the verifier
    // refuses unreachable instructions.
    unconditional = block.length === 2;
  }
  if (!unconditional) prog.push(insn(ALU32_MOV_K, R0, 0, 0, 0), insn(JMP_EXIT, 0, 0, 0, 0));
  return encode(prog);
}

/** struct bpf_insn { u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm; }, little endian. */
function encode(prog: readonly Insn[]): Buffer {
  const buf = Buffer.alloc(prog.length * 8);
  prog.forEach((ins, i) => {
    const o = i * 8;
    buf.writeUInt8(ins.code, o);
    buf.writeUInt8((ins.src << 4) | ins.dst, o + 1);
    buf.writeInt16LE(ins.off === 'next' ? 0 : ins.off, o + 2);
    buf.writeInt32LE(ins.imm | 0, o + 4);
  });
  return buf;
}
