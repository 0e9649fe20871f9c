/* The mount point that holds the rootfs (runc getParentMount()), found on
 * the Node thread before fork: the child's new mount namespace is a copy,
 * so the path stays valid there. Only needed for a shared or unbindable root
 * propagation (see rootfs.c). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "kapsel.h"

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s) {
  char *w = s;
  for (char *r = s; *r != '\0'; r++) {
    if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' &&
        r[3] <= '7') {
      *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
      r += 3;
    } else {
      *w++ = *r;
    }
  }
  *w = '\0';
}

/* `mnt` is `path` or one of its ancestors, component-wise. */
static int holds(const char *mnt, const char *path) {
  size_t n = strlen(mnt);
  if (strcmp(mnt, "/") == 0)
    return 1;
  return strncmp(mnt, path, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int kapsel_find_rootfs_parent(struct kapsel_request *req, struct kapsel_record *err) {
  if (req->rootfs == NULL || !(req->root_propagation & (MS_SHARED | MS_UNBINDABLE)))
    return 0;
  char real[PATH_MAX];
  if (realpath(req->rootfs, real) == NULL) {
    kapsel_record_error(err, errno, "realpath", req->rootfs);
    return -err->err;
  }
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (f == NULL) {
    kapsel_record_error(err, errno, "open", "/proc/self/mountinfo");
    return -err->err;
  }
  char *line = NULL, *best = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, f) > 0) {
    /* id parent major:minor root MOUNTPOINT ... */
    char *save = NULL, *field = strtok_r(line, " ", &save);
    for (int i = 0; i < 4 && field != NULL; i++)
      field = strtok_r(NULL, " ", &save);
    if (field == NULL)
      continue;
    unescape(field);
    if (holds(field, real) && (best == NULL || strlen(field) >= strlen(best))) {
      free(best);
      best = strdup(field);
    }
  }
  free(line);
  fclose(f);
  if (best == NULL) {
    kapsel_record_error(err, ENOENT, "mountinfo", real);
    return -ENOENT;
  }
  req->rootfs_parent = best;
  return 0;
}
