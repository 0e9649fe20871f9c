/* libkapsel: the only code in kapsel that runs clone/setns/mount/pivot_root.
 *
 * Error convention (crun's design-docs/error_handling.md): functions return 0
 * or a negative errno and fill a message naming the syscall and the path,
 * "mount `/proc`: No such file or directory".
 *
 * Threading: kapsel_spawn() and kapsel_mount() are called on Node's main
 * thread. Everything after fork() runs in a single-threaded copy of a
 * multi-threaded process, so it uses syscalls and the helpers in errors.c
 * only: no malloc, no stdio, no locks (another thread may have held them at
 * the moment of fork). */
#ifndef KAPSEL_H
#define KAPSEL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "protocol.h"

/* ---- Exported to Node (bound in agent/src/native/ffi.ts). ---- */

/* Index of each value kapsel_spawn() writes into out[]. */
enum {
  KAPSEL_OUT_CONTROL = 0, /* control socket, Node's end */
  KAPSEL_OUT_STDIN = 1,   /* write end of the container's stdin pipe */
  KAPSEL_OUT_STDOUT = 2,  /* read end of its stdout pipe */
  KAPSEL_OUT_STDERR = 3,  /* read end of its stderr pipe */
  KAPSEL_OUT_MONITOR = 4, /* monitor pid: Node reaps it after control EOF */
  KAPSEL_OUT_COUNT = 5,
};

/* Each returns 0, or a negative errno with *err filled in (type ERROR). */
int kapsel_spawn(const void *request, size_t len, int32_t *out, struct kapsel_record *err);
int kapsel_mount(const char *source, const char *target, const char *fstype, uint32_t flags,
                 uint32_t propagation, const char *data, struct kapsel_record *err);
int kapsel_umount(const char *target, int32_t flags, struct kapsel_record *err);
/* Loads insns (ninsns struct bpf_insn) as a cgroup device program, attaches
 * it to the cgroup directory, detaches replace_fd (if >= 0) and returns the
 * new program's fd. bpf_devices.c */
int kapsel_bpf_device_filter(const char *cgroup, const void *insns, uint32_t ninsns,
                             int32_t replace_fd, struct kapsel_record *err);
/* process.terminal, at READY: opens the master of a new pty in the devpts of
 * process `pid` (/proc/<pid>/root/dev/ptmx), unlocks it, sizes it, chowns
 * the slave to the process user; out: master, a dup of it, the pty index N
 * (the process opens /dev/pts/N after START), a slave fd to close once the
 * process has started. pty.c */
int kapsel_pty_open_in(int32_t pid, uint32_t rows, uint32_t cols, int32_t *out,
                       struct kapsel_record *err);
/* TIOCSWINSZ on a pty master (TtyWinResize). */
int kapsel_tty_resize(int32_t fd, uint32_t rows, uint32_t cols, struct kapsel_record *err);

/* ---- Internal: hidden from the .so's dynamic symbol table. ---- */
#pragma GCC visibility push(hidden)

struct kapsel_mount_entry {
  uint32_t flags;
  uint32_t propagation;
  const char *source;
  const char *target; /* absolute, inside the container */
  const char *fstype;
  const char *data;
};

#define KAPSEL_MAX_JOIN 8 /* one per namespace type */

struct kapsel_rlimit {
  int resource;
  uint64_t soft, hard;
};

struct kapsel_device {
  uint32_t mode; /* S_IF* | permission bits */
  uint32_t major, minor, uid, gid;
  const char *path; /* absolute, inside the container */
};

struct kapsel_sysctl {
  const char *key; /* relative to /proc/sys, with slashes */
  const char *value;
};

/* A seccomp rule as the request carries it: points into the request. */
struct kapsel_seccomp_rule {
  const char *data;
  uint32_t len;
};

struct kapsel_join_ns {
  int nstype;
  const char *path;
  int fd; /* opened by kapsel_spawn on the Node thread, O_CLOEXEC */
};

/* A parsed request. Every pointer points into one heap block made before
 * fork, so the monitor and the container init only read it. */
struct kapsel_request {
  char *storage;
  uint32_t new_ns;
  struct kapsel_join_ns *join;
  size_t njoin;
  const char *rootfs;
  struct kapsel_mount_entry *mounts;
  size_t nmounts;
  const char *hostname;
  char **argv; /* NULL-terminated */
  size_t argc;
  char **envp; /* NULL-terminated */
  size_t envc;
  const char *cwd;
  uid_t uid;
  gid_t gid;
  gid_t *groups;
  size_t ngroups;
  mode_t umask;
  uint32_t flags;
  uint32_t root_propagation;
  int root_propagation_set; /* linux.rootfsPropagation given: applied again after pivot_root */
  const char *cgroup;   /* cgroup v2 directory, or NULL */
  const char *path_env; /* the container's $PATH, or the default */
  int dev_is_tmpfs;     /* a tmpfs on /dev: create the default device nodes */

  int terminal; /* stdio is a pty: Node opens it at READY, we get N with START */
  uint16_t rows, cols;
  int has_caps; /* else the init keeps the caps it has (root: all) */
  uint64_t caps[5]; /* KAPSEL_CAP_* */
  int cap_last;     /* /proc/sys/kernel/cap_last_cap, read before fork */
  struct kapsel_rlimit *rlimits;
  size_t nrlimits;
  int has_oom_score_adj;
  int oom_score_adj;
  const char **masked;
  size_t nmasked;
  const char **readonly;
  size_t nreadonly;
  struct kapsel_sysctl *sysctls;
  size_t nsysctls;
  struct kapsel_device *devices;
  size_t ndevices;
  const char *uid_map, *gid_map; /* with CLONE_NEWUSER, written by the monitor */
  int has_seccomp;
  uint32_t seccomp_default, seccomp_flags;
  const char **seccomp_arches;
  size_t nseccomp_arches;
  struct kapsel_seccomp_rule *seccomp_rules;
  size_t nseccomp_rules;
  void *seccomp_prog; /* struct sock_fprog, compiled by kapsel_spawn before fork */
  char *rootfs_parent; /* shared or unbindable rootfsPropagation: the mount holding rootfs */
};

enum { KAPSEL_CAP_BOUNDING, KAPSEL_CAP_EFFECTIVE, KAPSEL_CAP_PERMITTED, KAPSEL_CAP_INHERITABLE,
       KAPSEL_CAP_AMBIENT };

/* The fds the monitor and the container init inherit from kapsel_spawn. */
struct kapsel_child_fds {
  int control;    /* monitor's end of the control socket */
  int sync_mon;   /* monitor's end of the sync socket */
  int sync_child; /* container init's end */
  int stdio[3];   /* container ends of the stdio pipes */
  int cgroup;     /* the request's cgroup directory, or -1 */
};

/* request.c (Node thread) */
int kapsel_request_parse(struct kapsel_request *req, const void *buf, size_t len,
                         struct kapsel_record *err);
void kapsel_request_free(struct kapsel_request *req);

/* errors.c (async-signal-safe) */
size_t kapsel_strlcpy(char *dst, const char *src, size_t size);
size_t kapsel_strlcat(char *dst, const char *src, size_t size);
const char *kapsel_strerror(int err, char *scratch, size_t len);
/* v in decimal at the end of buf (KAPSEL_UTOA_LEN bytes); returns its start. */
#define KAPSEL_UTOA_LEN 16
const char *kapsel_utoa(unsigned v, char *buf);
/* One write(2) of data to path, opened O_WRONLY|O_CLOEXEC|flags; the error
 * names the path. */
int kapsel_write_file(const char *path, int flags, const char *data, size_t len,
                      struct kapsel_record *err);
void kapsel_record_error(struct kapsel_record *rec, int err, const char *syscall, const char *path);
void kapsel_record_mount_error(struct kapsel_record *rec, int err, const char *source,
                               const char *target);
int kapsel_send_full(int fd, const void *buf, size_t len);
int kapsel_read_full(int fd, void *buf, size_t len);

/* mounts.c (async-signal-safe) */
int kapsel_mkdir_p(const char *path, mode_t mode);
int kapsel_do_mount(const struct kapsel_mount_entry *m, const char *target,
                    struct kapsel_record *err);
/* The two halves of kapsel_do_mount, for a caller that re-resolves the target
 * in between (a mount on /proc/self/fd/N must be reopened to reach the new
 * mount): the mount itself, then the bind remount and propagation. */
int kapsel_mount_first(const struct kapsel_mount_entry *m, const char *target,
                       struct kapsel_record *err);
int kapsel_mount_finish(const struct kapsel_mount_entry *m, const char *target,
                        struct kapsel_record *err);
int kapsel_needs_finish(const struct kapsel_mount_entry *m);
int kapsel_mount_is_file(const struct kapsel_mount_entry *m);

/* devices.c (async-signal-safe; rootfd is the rootfs before pivot_root) */
int kapsel_create_default_devices(int rootfd, struct kapsel_record *err);
int kapsel_create_spec_devices(const struct kapsel_request *req, int rootfd,
                               struct kapsel_record *err);

/* securejoin.c (async-signal-safe): opens `path` (absolute in the container)
 * with O_PATH, resolved inside rootfd as if it were "/" (openat2
 * RESOLVE_IN_ROOT), so no symlink or ".." leaves it. With create, missing
 * components are made as directories, and the last one as a file when
 * create == KAPSEL_CREATE_FILE. Returns the fd or a negative errno. */
enum { KAPSEL_CREATE_NONE, KAPSEL_CREATE_DIR, KAPSEL_CREATE_FILE };
int kapsel_open_in_root(int rootfd, const char *path, int create);
/* "/proc/self/fd/N" for an fd, into buf[32]. */
const char *kapsel_fd_path(int fd, char *buf);

/* Lock-down, in the container init (async-signal-safe). */
int kapsel_apply_rlimits(const struct kapsel_request *req, pid_t pid, struct kapsel_record *err);
int kapsel_apply_oom_score_adj(const struct kapsel_request *req, pid_t pid,
                               struct kapsel_record *err);
int kapsel_drop_bounding(const struct kapsel_request *req, struct kapsel_record *err);
int kapsel_apply_caps(const struct kapsel_request *req, struct kapsel_record *err);
int kapsel_apply_sysctls(const struct kapsel_request *req, struct kapsel_record *err);
/* loopback.c: lo up in the current (new) network namespace. */
int kapsel_loopback_up(struct kapsel_record *err);
int kapsel_apply_readonly_paths(const struct kapsel_request *req, int rootfd,
                                struct kapsel_record *err);
int kapsel_apply_masked_paths(const struct kapsel_request *req, int rootfd,
                              struct kapsel_record *err);
int kapsel_seccomp_load(const struct kapsel_request *req, struct kapsel_record *err);

/* seccomp.c (Node thread, before fork): compiles req's rules to BPF. */
int kapsel_seccomp_compile(struct kapsel_request *req, struct kapsel_record *err);
void kapsel_seccomp_free(struct kapsel_request *req);

/* userns.c (monitor): writes the child's uid_map and gid_map. */
int kapsel_write_id_maps(const struct kapsel_request *req, pid_t pid, struct kapsel_record *err);

/* rootfs_parent.c (Node thread): the mount point holding req->rootfs, from
 * /proc/self/mountinfo, when the root propagation is shared. */
int kapsel_find_rootfs_parent(struct kapsel_request *req, struct kapsel_record *err);

/* rootfs.c (async-signal-safe) */
int kapsel_prepare_rootfs(const struct kapsel_request *req, struct kapsel_record *err);

/* container_init.c, monitor.c: never return. */
__attribute__((noreturn)) void kapsel_container_init(const struct kapsel_request *req,
                                                     const struct kapsel_child_fds *fds);
__attribute__((noreturn)) void kapsel_monitor(const struct kapsel_request *req,
                                              const struct kapsel_child_fds *fds,
                                              pid_t node_pid);

#pragma GCC visibility pop

#endif
