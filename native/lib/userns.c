/* User namespaces: the monitor writes the new init's uid_map and gid_map
 * (it holds CAP_SETUID/CAP_SETGID in the parent namespace, which a map of
 * more than the writer's own id needs), then tells the init, which waits
 * for that before doing anything else (runc nsexec's SYNC_USERMAP_PLS).
 * Async-signal-safe. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "kapsel.h"

static int write_map(pid_t pid, const char *file, const char *map, struct kapsel_record *err) {
  char path[64], digits[16];
  size_t i = sizeof digits;
  unsigned v = (unsigned)pid;
  digits[--i] = '\0';
  do {
    digits[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0 && i > 0);
  kapsel_strlcpy(path, "/proc/", sizeof path);
  kapsel_strlcat(path, digits + i, sizeof path);
  kapsel_strlcat(path, "/", sizeof path);
  kapsel_strlcat(path, file, sizeof path);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  /* The kernel takes the whole map in one write, or nothing. */
  if (fd < 0 || write(fd, map, strlen(map)) < 0) {
    kapsel_record_error(err, errno, "write", path);
    if (fd >= 0)
      close(fd);
    return -err->err;
  }
  close(fd);
  return 0;
}

int kapsel_write_id_maps(const struct kapsel_request *req, pid_t pid, struct kapsel_record *err) {
  if (req->uid_map != NULL && write_map(pid, "uid_map", req->uid_map, err) < 0)
    return -err->err;
  if (req->gid_map != NULL && write_map(pid, "gid_map", req->gid_map, err) < 0)
    return -err->err;
  return 0;
}
