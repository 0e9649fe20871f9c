/* process.terminal. The pty must come from the container's own devpts (the
 * `newinstance` mount at /dev/pts), or inside it /proc/self/fd/0 names a
 * node of another instance and `tty` says "not a tty"; runc makes it inside
 * the container for the same reason. Node cannot receive an fd, so it opens
 * the master itself, through /proc/<pid>/root, once the process reports
 * READY (its mounts are done, its ids final): kapsel_pty_open_in(). The
 * index goes to the process with START; it opens /dev/pts/N there and makes
 * it its controlling terminal and stdio (container_init.c).
 * kapsel_tty_resize() is TtyWinResize. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "kapsel.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

/* The effective uid and gid of `pid` as this (the agent's) user namespace
 * sees them, i.e. already mapped: the slave is chowned to them, as runc's
 * console belongs to the process user. */
static int process_ids(int32_t pid, long *uid, long *gid, struct kapsel_record *err) {
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
  if (fd >= 0)
    close(fd);
  if (n < 0) {
    kapsel_record_error(err, errno, "read", path);
    return -err->err;
  }
  buf[n] = '\0';
  const char *u = strstr(buf, "\nUid:"), *g = strstr(buf, "\nGid:");
  char *end;
  /* "Uid:\treal\teffective\tsaved\tfs" */
  if (u == NULL || g == NULL) {
    kapsel_record_error(err, EINVAL, "read", path);
    return -EINVAL;
  }
  strtol(u + 5, &end, 10);
  *uid = strtol(end, NULL, 10);
  strtol(g + 5, &end, 10);
  *gid = strtol(end, NULL, 10);
  return 0;
}

/* /dev/ptmx of the process's root: a "pts/ptmx" symlink (devices.c) or a
 * node. RESOLVE_IN_ROOT keeps every symlink and ".." below that root, so the
 * image cannot send us to the agent's own ptmx or anywhere else. */
static int open_ptmx(int32_t pid, struct kapsel_record *err) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/root", (int)pid);
  int root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) {
    kapsel_record_error(err, errno, "open", path);
    return -err->err;
  }
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = O_RDWR | O_NOCTTY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  long fd;
  do
    fd = syscall(SYS_openat2, root, "/dev/ptmx", &how, sizeof how);
  while (fd < 0 && errno == EAGAIN);
  int e = errno;
  close(root);
  if (fd < 0) {
    kapsel_record_error(err, e, "open", "/dev/ptmx");
    kapsel_strlcpy(err->message, "open /dev/ptmx in the container (is /dev/pts a devpts mount?): ",
                   sizeof err->message);
    char scratch[32];
    kapsel_strlcat(err->message, kapsel_strerror(e, scratch, sizeof scratch), sizeof err->message);
    return -e;
  }
  return (int)fd;
}

int kapsel_pty_open_in(int32_t pid, uint32_t rows, uint32_t cols, int32_t *out,
                       struct kapsel_record *err) {
  long uid, gid;
  int r = process_ids(pid, &uid, &gid, err);
  if (r < 0)
    return r;
  int master = open_ptmx(pid, err);
  if (master < 0)
    return master;
  int unlock = 0, index = -1, slave = -1, dup = -1;
  const char *what = "TIOCSPTLCK";
  if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
    goto fail;
  what = "TIOCGPTN";
  if (ioctl(master, TIOCGPTN, &index) < 0)
    goto fail;
  if (rows != 0 || cols != 0) {
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    what = "TIOCSWINSZ";
    if (ioctl(master, TIOCSWINSZ, &ws) < 0)
      goto fail;
  }
  /* The peer needs no path lookup (Linux >= 4.13). */
  what = "TIOCGPTPEER";
  slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0)
    goto fail;
  what = "fchown";
  if (fchown(slave, (uid_t)uid, (gid_t)gid) < 0)
    goto fail;
  /* Two fds for Node: one read stream, one writer, each closed alone. */
  what = "F_DUPFD_CLOEXEC";
  dup = fcntl(master, F_DUPFD_CLOEXEC, 3);
  if (dup < 0)
    goto fail;
  out[0] = master;
  out[1] = dup;
  out[2] = index;
  /* Node holds a slave until the process has its own: a master whose
   * slaves have all been closed reads EIO, the end of the terminal. */
  out[3] = slave;
  return 0;
fail:
  kapsel_record_error(err, errno, strcmp(what, "fchown") == 0 ? "fchown" : "ioctl", what);
  if (slave >= 0)
    close(slave);
  close(master);
  return -err->err;
}

int kapsel_tty_resize(int32_t fd, uint32_t rows, uint32_t cols, struct kapsel_record *err) {
  struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
  if (ioctl(fd, TIOCSWINSZ, &ws) < 0) {
    kapsel_record_error(err, errno, "ioctl", "TIOCSWINSZ");
    return -err->err;
  }
  return 0;
}
