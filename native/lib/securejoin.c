/* Path resolution inside the container's rootfs, the job of runc's
 * securejoin + fd-based mounts: a symlink in the image ("/etc -> /", or
 * "x -> ../..") must not send a mount or a masked path outside the rootfs.
 * openat2(RESOLVE_IN_ROOT) (Linux >= 5.6) treats rootfd as "/" for every
 * symlink and "..", so the result is always below it; the caller then mounts
 * on "/proc/self/fd/N", which names exactly that inode. Async-signal-safe. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kapsel.h"

static int resolve(int rootfd, const char *path) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = O_PATH | O_CLOEXEC;
  /* No magic links either: /proc/self/root in the image must not count. */
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  long fd;
  do
    fd = syscall(SYS_openat2, rootfd, path, &how, sizeof how);
  while (fd < 0 && errno == EAGAIN); /* a concurrent rename; retry as runc does */
  return fd < 0 ? -errno : (int)fd;
}

const char *kapsel_fd_path(int fd, char *buf) {
  char digits[KAPSEL_UTOA_LEN];
  kapsel_strlcpy(buf, "/proc/self/fd/", 32);
  kapsel_strlcat(buf, kapsel_utoa((unsigned)fd, digits), 32);
  return buf;
}

int kapsel_open_in_root(int rootfd, const char *path, int create) {
  char prefix[PATH_MAX];
  size_t len = strlen(path);
  if (len >= sizeof prefix)
    return -ENAMETOOLONG;
  int fd = resolve(rootfd, path);
  if (fd >= 0 || fd != -ENOENT || create == KAPSEL_CREATE_NONE)
    return fd;

  /* Walk component by component: resolve each prefix inside the root, and
   * create a missing name inside the directory its parent resolved to, so a
   * created directory is always where the resolution says it is. */
  int parent = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
  if (parent < 0)
    return -errno;
  size_t off = 0;
  while (off < len) {
    while (path[off] == '/')
      off++;
    if (off >= len)
      break;
    size_t end = off;
    while (end < len && path[end] != '/')
      end++;
    size_t rest = end;
    while (rest < len && path[rest] == '/')
      rest++;
    int last = rest >= len;
    memcpy(prefix, path, end);
    prefix[end] = '\0';
    int next = resolve(rootfd, prefix);
    if (next == -ENOENT) {
      char name[NAME_MAX + 1];
      if (end - off > NAME_MAX) {
        close(parent);
        return -ENAMETOOLONG;
      }
      memcpy(name, path + off, end - off);
      name[end - off] = '\0';
      if (strcmp(name, "..") == 0 || strcmp(name, ".") == 0) {
        close(parent);
        return -ENOENT;
      }
      int r;
      if (last && create == KAPSEL_CREATE_FILE) {
        r = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (r >= 0)
          close(r);
      } else {
        r = mkdirat(parent, name, 0755);
      }
      if (r < 0 && errno != EEXIST) {
        r = -errno;
        close(parent);
        return r;
      }
      next = resolve(rootfd, prefix);
    }
    close(parent);
    if (next < 0)
      return next;
    parent = next;
    off = end;
  }
  return parent;
}
