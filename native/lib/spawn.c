/* kapsel_spawn(): called on Node's main thread. Parses the request and
 * makes every fd while allocation is still allowed, then forks the
 * monitor (monitor.c), which clones the container init (container_init.c).
 *
 *   Node ──control (stream, 1024-byte records)── monitor ──sync (seqpacket)── init
 *   Node ══stdin/stdout/stderr pipes══════════════════════════════════════════ init
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kapsel.h"

static void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
}
#define cleanup_fd __attribute__((cleanup(close_fd)))

static void free_request(struct kapsel_request *req) {
  for (size_t i = 0; i < req->njoin; i++)
    close_fd(&req->join[i].fd);
  kapsel_request_free(req);
}
#define cleanup_request __attribute__((cleanup(free_request)))

static int steal(int *fd) {
  int v = *fd;
  *fd = -1;
  return v;
}

static int fail(struct kapsel_record *err, const char *syscall, const char *path) {
  int e = errno;
  kapsel_record_error(err, e, syscall, path);
  return -e;
}

/* The container's stdio ends must not be 0, 1 or 2, or one dup2 in the init
 * would clobber another. Node keeps 0-2 open, so this is only a guard. */
static int above_stdio(int *fd) {
  if (*fd > 2)
    return 0;
  int copy = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0)
    return -errno;
  close(*fd);
  *fd = copy;
  return 0;
}

/* The highest capability this kernel knows, for dropping the rest of the
 * bounding set (runc reads the same file). */
static int read_cap_last(struct kapsel_request *req, struct kapsel_record *err) {
  char buf[16] = {0};
  int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || read(fd, buf, sizeof buf - 1) <= 0) {
    if (fd >= 0)
      close(fd);
    return fail(err, "read", "/proc/sys/kernel/cap_last_cap");
  }
  close(fd);
  req->cap_last = atoi(buf);
  if (req->cap_last > 63)
    req->cap_last = 63;
  return 0;
}

int kapsel_spawn(const void *request, size_t len, int32_t *out, struct kapsel_record *err) {
  cleanup_request struct kapsel_request req;
  cleanup_fd int ctl_node = -1, ctl_mon = -1, sync_mon = -1, sync_child = -1;
  cleanup_fd int in_r = -1, in_w = -1, out_r = -1, out_w = -1, err_r = -1, err_w = -1;
  cleanup_fd int cgroup = -1;
  int sv[2], p[3][2];

  int r = kapsel_request_parse(&req, request, len, err);
  if (r < 0) {
    memset(&req, 0, sizeof req); /* parse already freed it */
    return r;
  }
  if (req.has_caps && (r = read_cap_last(&req, err)) < 0)
    return r;
  if ((r = kapsel_find_rootfs_parent(&req, err)) < 0)
    return r;
  /* A bad profile (an unknown syscall name) fails create, before any fork. */
  if ((r = kapsel_seccomp_compile(&req, err)) < 0)
    return r;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return fail(err, "socketpair", "control");
  ctl_node = sv[0];
  ctl_mon = sv[1];
  /* SEQPACKET keeps records whole and reports the init's exit or execve
   * as EOF; O_CLOEXEC is what makes execve close it. */
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return fail(err, "socketpair", "sync");
  sync_mon = sv[0];
  sync_child = sv[1];
  for (int i = 0; i < 3; i++)
    if (pipe2(p[i], O_CLOEXEC) < 0) {
      r = fail(err, "pipe2", i == 0 ? "stdin" : i == 1 ? "stdout" : "stderr");
      for (int j = 0; j < i; j++) {
        close(p[j][0]);
        close(p[j][1]);
      }
      return r;
    }
  in_r = p[0][0], in_w = p[0][1];
  out_r = p[1][0], out_w = p[1][1];
  err_r = p[2][0], err_w = p[2][1];
  if ((r = above_stdio(&in_r)) < 0 || (r = above_stdio(&out_w)) < 0 ||
      (r = above_stdio(&err_w)) < 0) {
    errno = -r;
    return fail(err, "fcntl", "F_DUPFD_CLOEXEC");
  }

  /* Open namespace paths here, so a bad path fails synchronously. */
  for (size_t i = 0; i < req.njoin; i++) {
    req.join[i].fd = open(req.join[i].path, O_RDONLY | O_CLOEXEC);
    if (req.join[i].fd < 0)
      return fail(err, "open", req.join[i].path);
  }

  if (req.cgroup != NULL) {
    cgroup = open(req.cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cgroup < 0)
      return fail(err, "open", req.cgroup);
  }

  struct kapsel_child_fds fds = {
      .control = ctl_mon,
      .sync_mon = sync_mon,
      .sync_child = sync_child,
      .stdio = {in_r, out_w, err_w},
      .cgroup = cgroup,
  };
  pid_t node_pid = getpid();
  pid_t pid = fork();
  if (pid < 0)
    return fail(err, "fork", NULL);
  if (pid == 0) {
    /* Node's ends stay with Node only. */
    close(ctl_node);
    close(in_w);
    close(out_r);
    close(err_r);
    kapsel_monitor(&req, &fds, node_pid);
  }

  out[KAPSEL_OUT_CONTROL] = steal(&ctl_node);
  if (req.terminal) {
    /* The pty comes at READY (kapsel_pty_open_in); the pipes go unused. */
    out[KAPSEL_OUT_STDIN] = out[KAPSEL_OUT_STDOUT] = out[KAPSEL_OUT_STDERR] = -1;
  } else {
    out[KAPSEL_OUT_STDIN] = steal(&in_w);
    out[KAPSEL_OUT_STDOUT] = steal(&out_r);
    out[KAPSEL_OUT_STDERR] = steal(&err_r);
  }
  out[KAPSEL_OUT_MONITOR] = pid;
  return 0; /* the cleanups close every fd that belongs to the children */
}
