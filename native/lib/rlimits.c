/* process.rlimits and process.oomScoreAdj, set by the init while it is
 * still root (raising a hard limit needs CAP_SYS_RESOURCE, and so does a
 * negative oom_score_adj). Async-signal-safe. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "kapsel.h"

int kapsel_apply_rlimits(const struct kapsel_request *req, struct kapsel_record *err) {
  for (size_t i = 0; i < req->nrlimits; i++) {
    struct rlimit rl = {.rlim_cur = req->rlimits[i].soft, .rlim_max = req->rlimits[i].hard};
    if (setrlimit(req->rlimits[i].resource, &rl) < 0) {
      kapsel_record_error(err, errno, "setrlimit", NULL);
      return -err->err;
    }
  }
  return 0;
}

/* Written through the agent's /proc, before the rootfs is built: it is the
 * init's own file either way. */
int kapsel_apply_oom_score_adj(const struct kapsel_request *req, struct kapsel_record *err) {
  if (!req->has_oom_score_adj)
    return 0;
  char buf[16];
  size_t i = sizeof buf;
  int v = req->oom_score_adj;
  unsigned u = v < 0 ? (unsigned)-v : (unsigned)v;
  do {
    buf[--i] = (char)('0' + u % 10);
    u /= 10;
  } while (u != 0 && i > 1);
  if (v < 0)
    buf[--i] = '-';
  int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, buf + i, sizeof buf - i) < 0) {
    kapsel_record_error(err, errno, "write", "/proc/self/oom_score_adj");
    if (fd >= 0)
      close(fd);
    return -err->err;
  }
  close(fd);
  return 0;
}
