/* linux.sysctl: written under the container's own /proc/sys after
 * pivot_root, so net.* lands in its network namespace and kernel.shm* in
 * its IPC namespace (runc writeSystemProperty). Async-signal-safe. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "kapsel.h"

int kapsel_apply_sysctls(const struct kapsel_request *req, struct kapsel_record *err) {
  char path[PATH_MAX];
  for (size_t i = 0; i < req->nsysctls; i++) {
    const struct kapsel_sysctl *s = &req->sysctls[i];
    kapsel_strlcpy(path, "/proc/sys/", sizeof path);
    if (kapsel_strlcat(path, s->key, sizeof path) >= sizeof path) {
      kapsel_record_error(err, ENAMETOOLONG, "sysctl", s->key);
      return -ENAMETOOLONG;
    }
    int r = kapsel_write_file(path, O_NOFOLLOW, s->value, strlen(s->value), err);
    if (r < 0)
      return r;
  }
  return 0;
}
