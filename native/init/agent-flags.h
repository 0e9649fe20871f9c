/* Node and V8 flags of the guest agent, one quoted flag and a comma per
 * line. rootfs/build.sh reads this list (the quoted strings) to make the
 * agent's V8 code cache with the same flags: V8 refuses a cache made under
 * other flags (src/snapshot/code-serializer.cc, SerializedCodeData::
 * SanityCheck compares FlagList::Hash()), and the agent then compiles from
 * source. */
#ifndef KAPSEL_AGENT_FLAGS_H
#define KAPSEL_AGENT_FLAGS_H

#define AGENT_NODE_FLAGS

#endif
