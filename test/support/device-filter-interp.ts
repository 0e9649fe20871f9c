// A tiny interpreter for the eBPF device programs the agent generates
// (agent/src/cgroups/device-filter.ts), written from the kernel's
// definitions independently of the generator, so unit tests can check rule
// semantics; host tests load the same programs into the real kernel.

/** Evaluates prog for one access, as the kernel would; true when allowed. */
export function runDeviceFilter(
  prog: Buffer,
  type: 'c' | 'b',
  major: number,
  minor: number,
  access: string,
): boolean {
  // bpf_cgroup_dev_ctx: access_type = access << 16 | type (BPF_DEVCG_*)
  let acc = 0;
  if (access.includes('m')) acc |= 1;
  if (access.includes('r')) acc |= 2;
  if (access.includes('w')) acc |= 4;
  const ctx = [(acc << 16) | (type === 'c' ? 2 : 1), major, minor];
  const r = new Array<number>(11).fill(0);
  for (let pc = 0; pc * 8 < prog.length; pc++) {
    const o = pc * 8;
    const code = prog.readUInt8(o);
    const dst = prog.readUInt8(o + 1) & 0xf;
    const src = prog.readUInt8(o + 1) >> 4;
    const off = prog.readInt16LE(o + 2);
    const imm = prog.readInt32LE(o + 4) >>> 0;
    const get = (i: number): number => r[i] ?? 0;
    switch (code) {
      case 0x61: // ldxw dst, [src + off]
        if (src !== 1 || off % 4 !== 0) throw new Error(`bad load at ${pc}`);
        r[dst] = ctx[off / 4] ?? 0;
        break;
      case 0x54: // and32 dst, imm
        r[dst] = (get(dst) & imm) >>> 0;
        break;
      case 0x74: // rsh32 dst, imm
        r[dst] = get(dst) >>> imm;
        break;
      case 0xb4: // mov32 dst, imm
        r[dst] = imm;
        break;
      case 0xbc: // mov32 dst, src
        r[dst] = get(src);
        break;
      case 0x15: // jeq dst, imm, +off
        if (get(dst) === imm) pc += off;
        break;
      case 0x55: // jne dst, imm, +off
        if (get(dst) !== imm) pc += off;
        break;
      case 0x5d: // jne dst, src, +off
        if (get(dst) !== get(src)) pc += off;
        break;
      case 0x95: // exit
        return get(0) === 1;
      default:
        throw new Error(`unexpected opcode 0x${code.toString(16)} at ${pc}`);
    }
  }
  throw new Error('program ran off its end');
}
