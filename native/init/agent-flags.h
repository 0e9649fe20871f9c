/* Node and V8 flags of the guest agent, one quoted flag and a comma per
 * line. rootfs/build.sh reads this list (the quoted strings) to make the
 * agent's V8 code cache with the same flags: V8 refuses a cache made under
 * other flags (src/snapshot/code-serializer.cc, SerializedCodeData::
 * SanityCheck compares FlagList::Hash()), and the agent then compiles from
 * source. */
#ifndef KAPSEL_AGENT_FLAGS_H
#define KAPSEL_AGENT_FLAGS_H

/* --jitless: V8 interprets and generates no machine code. Under TCG every
 * piece of JIT code is new guest code for QEMU to translate, and writes to
 * code pages flush translations: measured (bench/agent-start.ts, 3 runs
 * each, no cache either way) exec -> agent port open 5046 -> 3768 ms, and
 * 20 Check RPCs after it 1242 -> 515 ms. It also turns WebAssembly off
 * (grpc-js's `long` falls back to JS). Under KVM it may cost steady-state
 * speed: measure there before keeping it. */
/* --max-semi-space-size=1 (MiB): V8 grows its young generation with the
 * allocation rate, up to 16 MiB a semi-space, and never shrinks it on a
 * forced collection, so an agent that once served a burst keeps it: the
 * standalone agent's RssAnon went 15.0 -> 29.3 MiB over 400 container
 * lifecycles with its old space flat at 6.3 MB and its new space at 16 MiB
 * (13.9 MiB touched), and 14.0 -> 15.2 MiB with the cap, in the same time
 * (30 vs 32 s): its calls allocate little that lives. */
#define AGENT_NODE_FLAGS "--jitless", "--max-semi-space-size=1",

#endif
