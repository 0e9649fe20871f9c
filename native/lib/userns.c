/* User namespaces: the monitor writes the new init's uid_map and gid_map
 * (it holds CAP_SETUID/CAP_SETGID in the parent namespace, which a map of
 * more than the writer's own id needs), then tells the init, which waits
 * for that before doing anything else (runc nsexec's SYNC_USERMAP_PLS).
 * Async-signal-safe. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "kapsel.h"

static int write_map(pid_t pid, const char *file, const char *map, struct kapsel_record *err) {
  char path[64], digits[KAPSEL_UTOA_LEN];
  kapsel_strlcpy(path, "/proc/", sizeof path);
  kapsel_strlcat(path, kapsel_utoa((unsigned)pid, digits), sizeof path);
  kapsel_strlcat(path, "/", sizeof path);
  kapsel_strlcat(path, file, sizeof path);
  /* The kernel takes the whole map in one write, or nothing. */
  return kapsel_write_file(path, 0, map, strlen(map), err);
}

int kapsel_write_id_maps(const struct kapsel_request *req, pid_t pid, struct kapsel_record *err) {
  if (req->uid_map != NULL && write_map(pid, "uid_map", req->uid_map, err) < 0)
    return -err->err;
  if (req->gid_map != NULL && write_map(pid, "gid_map", req->gid_map, err) < 0)
    return -err->err;
  return 0;
}
