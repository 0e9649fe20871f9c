/* kapsel_mount() / kapsel_umount(): a mount in the agent's own mount
 * namespace (virtio-fs shares, the guest's cgroup2), done by a forked
 * single-threaded child so that no mount syscall runs on a Node thread.
 * The namespace is shared, so Node sees the result. The child reports a
 * failure as one error record over an O_CLOEXEC pipe; a record is smaller
 * than PIPE_BUF, so it arrives whole. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kapsel.h"

struct helper_op {
  const struct kapsel_mount_entry *mount; /* or NULL for an unmount */
  const char *target;
  int umount_flags;
};

static int run_helper(const struct helper_op *op, struct kapsel_record *err) {
  int p[2];

  memset(err, 0, sizeof *err);
  if (pipe2(p, O_CLOEXEC) < 0) {
    kapsel_record_error(err, errno, "pipe2", NULL);
    return -err->err;
  }
  pid_t pid = fork();
  if (pid < 0) {
    kapsel_record_error(err, errno, "fork", NULL);
    close(p[0]);
    close(p[1]);
    return -err->err;
  }
  if (pid == 0) {
    /* After fork in a multi-threaded process: syscalls only. */
    struct kapsel_record rec;
    close(p[0]);
    memset(&rec, 0, sizeof rec);
    if (op->mount != NULL) {
      if (kapsel_do_mount(op->mount, op->target, &rec) < 0) {
        (void)!write(p[1], &rec, sizeof rec);
        _exit(1);
      }
    } else if (umount2(op->target, op->umount_flags) < 0) {
      kapsel_record_error(&rec, errno, "umount2", op->target);
      (void)!write(p[1], &rec, sizeof rec);
      _exit(1);
    }
    _exit(0);
  }

  close(p[1]);
  ssize_t n;
  do
    n = read(p[0], err, sizeof *err);
  while (n < 0 && errno == EINTR);
  close(p[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (n == (ssize_t)sizeof *err && err->type == KAPSEL_MSG_ERROR)
    return -err->err;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    kapsel_record_error(err, EIO, op->mount != NULL ? "mount" : "umount2", op->target);
    snprintf(err->message, sizeof err->message, "%s `%s`: helper died (wait status %d)",
             err->syscall, op->target, status);
    return -EIO;
  }
  memset(err, 0, sizeof *err);
  return 0;
}

/* Creates the target directory (or file, for a bind of a file) if needed,
 * like the mounts of a container rootfs. */
int kapsel_mount(const char *source, const char *target, const char *fstype, uint32_t flags,
                 uint32_t propagation, const char *data, struct kapsel_record *err) {
  struct kapsel_mount_entry m = {
      .flags = flags,
      .propagation = propagation,
      .source = source != NULL ? source : "",
      .target = target,
      .fstype = fstype != NULL ? fstype : "",
      .data = data != NULL ? data : "",
  };
  if (target == NULL || target[0] != '/') {
    kapsel_record_error(err, EINVAL, "mount", target);
    snprintf(err->message, sizeof err->message, "mount `%s`: target must be absolute",
             target != NULL ? target : "");
    return -EINVAL;
  }
  struct helper_op op = {.mount = &m, .target = target};
  return run_helper(&op, err);
}

int kapsel_umount(const char *target, int32_t flags, struct kapsel_record *err) {
  struct helper_op op = {.target = target, .umount_flags = flags};
  return run_helper(&op, err);
}
