/* process.rlimits and process.oomScoreAdj. Raising a hard limit and a
 * negative oom_score_adj need CAP_SYS_RESOURCE in the initial user
 * namespace: the init sets them itself while still root (pid 0), except in
 * a new user namespace, where the monitor sets them on it from outside
 * before the go-ahead, as runc's parent does (setupRlimits with prlimit in
 * libcontainer/process_linux.go). Async-signal-safe. */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "kapsel.h"

int kapsel_apply_rlimits(const struct kapsel_request *req, pid_t pid, struct kapsel_record *err) {
  for (size_t i = 0; i < req->nrlimits; i++) {
    struct rlimit rl = {.rlim_cur = req->rlimits[i].soft, .rlim_max = req->rlimits[i].hard};
    if (prlimit(pid, (int)req->rlimits[i].resource, &rl, NULL) < 0) {
      kapsel_record_error(err, errno, pid == 0 ? "setrlimit" : "prlimit", NULL);
      return -err->err;
    }
  }
  return 0;
}

/* Written through the agent's /proc, before the rootfs is built: it is the
 * init's own file either way. */
int kapsel_apply_oom_score_adj(const struct kapsel_request *req, pid_t pid, struct kapsel_record *err) {
  if (!req->has_oom_score_adj)
    return 0;
  char buf[KAPSEL_UTOA_LEN + 1];
  int v = req->oom_score_adj;
  char *text = (char *)kapsel_utoa(v < 0 ? (unsigned)-v : (unsigned)v, buf + 1);
  if (v < 0)
    *--text = '-';
  if (pid == 0)
    return kapsel_write_file("/proc/self/oom_score_adj", 0, text, strlen(text), err);
  char path[sizeof "/proc//oom_score_adj" + KAPSEL_UTOA_LEN];
  char pidbuf[KAPSEL_UTOA_LEN + 1];
  const char *p = kapsel_utoa((unsigned)pid, pidbuf);
  size_t n = 0;
  memcpy(path, "/proc/", 6);
  n = 6;
  memcpy(path + n, p, strlen(p));
  n += strlen(p);
  memcpy(path + n, "/oom_score_adj", sizeof "/oom_score_adj");
  return kapsel_write_file(path, 0, text, strlen(text), err);
}
