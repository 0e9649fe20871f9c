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
  const char *cgroup;   /* cgroup v2 directory, or NULL */
  const char *path_env; /* the container's $PATH, or the default */
  int dev_is_tmpfs;     /* a tmpfs on /dev: create the default device nodes */
};

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
void kapsel_record_error(struct kapsel_record *rec, int err, const char *syscall, const char *path);
void kapsel_record_mount_error(struct kapsel_record *rec, int err, const char *source,
                               const char *target);
int kapsel_send_full(int fd, const void *buf, size_t len);
int kapsel_read_full(int fd, void *buf, size_t len);

/* mounts.c (async-signal-safe) */
int kapsel_mkdir_p(const char *path, mode_t mode);
int kapsel_do_mount(const struct kapsel_mount_entry *m, const char *target,
                    struct kapsel_record *err);

/* devices.c (async-signal-safe; cwd is the rootfs) */
int kapsel_create_default_devices(struct kapsel_record *err);

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
