/* The wire formats shared with agent/src/native/protocol.ts (the encoder;
 * request.c decodes). Change both sides together: test/unit/contract.test.ts
 * holds the tags and flags to the same values. All integers are in host byte order: the
 * encoder and the decoder always run on the same machine. */
#ifndef KAPSEL_PROTOCOL_H
#define KAPSEL_PROTOCOL_H

#include <stdint.h>

/* ---- Spawn request: "KPS1" then fields {u32 tag, u32 len, len bytes}. ----
 * Strings carry their terminating NUL inside len. Repeated tags append. */
#define KAPSEL_REQ_MAGIC "KPS1"

enum kapsel_req_tag {
  KAPSEL_REQ_NEW_NS = 1,      /* u32: CLONE_NEW* flags for clone() */
  KAPSEL_REQ_JOIN_NS = 2,     /* u32 CLONE_NEW* type, then path string (setns) */
  KAPSEL_REQ_ROOTFS = 3,      /* string; absent for an exec into a container */
  KAPSEL_REQ_MOUNT = 4,       /* u32 flags, u32 propagation, then 4 strings:
                                 source, target (in the container), fstype, data */
  KAPSEL_REQ_HOSTNAME = 5,    /* string */
  KAPSEL_REQ_ARG = 6,         /* string, once per argv element */
  KAPSEL_REQ_ENV = 7,         /* string "K=V", once per variable */
  KAPSEL_REQ_CWD = 8,         /* string */
  KAPSEL_REQ_UID = 9,         /* u32 */
  KAPSEL_REQ_GID = 10,        /* u32 */
  KAPSEL_REQ_GROUP = 11,      /* u32, once per additional gid */
  KAPSEL_REQ_UMASK = 12,      /* u32 */
  KAPSEL_REQ_FLAGS = 13,      /* u32, KAPSEL_FLAG_* */
  KAPSEL_REQ_ROOT_PROPAGATION = 14, /* u32 MS_* applied to "/" first */
  KAPSEL_REQ_CGROUP = 15,     /* string: cgroup v2 directory to be born in */
  KAPSEL_REQ_TERMINAL = 16,   /* u32 rows, u32 cols: a pty for stdio (0 0: kernel default),
                                 opened in the container's devpts at READY (pty.c) */
  KAPSEL_REQ_CAPS = 17,       /* 5 x (u32 lo, u32 hi): bounding, effective, permitted,
                                 inheritable, ambient; absent: caps are left as they are */
  KAPSEL_REQ_RLIMIT = 18,     /* u32 resource, u32 soft lo, hi, u32 hard lo, hi */
  KAPSEL_REQ_OOM_SCORE_ADJ = 19, /* i32 */
  KAPSEL_REQ_MASKED = 20,     /* string: path in the container */
  KAPSEL_REQ_READONLY = 21,   /* string: path in the container */
  KAPSEL_REQ_SYSCTL = 22,     /* 2 strings: path under /proc/sys, value */
  KAPSEL_REQ_DEVICE = 23,     /* u32 mode (S_IF* | perm), major, minor, uid, gid, then path */
  KAPSEL_REQ_SECCOMP = 24,    /* u32 default action, u32 SECCOMP_FILTER_FLAG_* */
  KAPSEL_REQ_SECCOMP_ARCH = 25, /* string: libseccomp arch name ("x86_64") */
  KAPSEL_REQ_SECCOMP_RULE = 26, /* u32 action, u32 nargs, nargs x (u32 index, u32 op,
                                   u32 value lo, hi, u32 value2 lo, hi), then name */
  KAPSEL_REQ_UID_MAP = 27,    /* string: uid_map content, written by the monitor */
  KAPSEL_REQ_GID_MAP = 28,    /* string: gid_map content */
};

#define KAPSEL_FLAG_READONLY_ROOT 0x1u /* OCI root.readonly */
/* 0x2u was --no-pivot (MS_MOVE + chroot): the guest always pivots. */
#define KAPSEL_FLAG_NO_NEW_PRIVS 0x4u  /* OCI process.noNewPrivileges */

/* ---- Records: fixed 1024 bytes, both on the control socket (monitor <->
 * Node, SOCK_STREAM) and on the sync socket (container init <-> monitor,
 * SOCK_SEQPACKET). ---- */
enum kapsel_msg_type {
  /* monitor -> Node */
  KAPSEL_MSG_READY = 1,   /* value: container init pid (caller's pid namespace) */
  KAPSEL_MSG_ERROR = 2,   /* err, syscall, path, message */
  KAPSEL_MSG_STARTED = 3, /* execve succeeded */
  KAPSEL_MSG_EXITED = 4,  /* value: raw wait status; the monitor exits next */
  /* init <-> monitor (sync socket) */
  KAPSEL_MSG_MAP_IDS = 8, /* init -> monitor: write my uid_map/gid_map; monitor -> init: done */
  /* Node -> monitor */
  KAPSEL_MSG_START = 16,  /* value: with a terminal, N of the /dev/pts/N Node opened (pty.c) */
  KAPSEL_MSG_SIGNAL = 17, /* value: signal number */
};

#define KAPSEL_RECORD_SIZE 1024

struct kapsel_record {
  int32_t type;
  int32_t value;
  int32_t err; /* positive errno */
  int32_t reserved;
  char syscall[32];
  char path[480];
  char message[496];
};

_Static_assert(sizeof(struct kapsel_record) == KAPSEL_RECORD_SIZE, "record layout");

#endif
