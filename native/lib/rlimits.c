/* process.rlimits and process.oomScoreAdj, set by the init while it is
 * still root (raising a hard limit needs CAP_SYS_RESOURCE, and so does a
 * negative oom_score_adj). Async-signal-safe. */
#include <errno.h>
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
  char buf[KAPSEL_UTOA_LEN + 1];
  int v = req->oom_score_adj;
  char *text = (char *)kapsel_utoa(v < 0 ? (unsigned)-v : (unsigned)v, buf + 1);
  if (v < 0)
    *--text = '-';
  return kapsel_write_file("/proc/self/oom_score_adj", 0, text, strlen(text), err);
}
