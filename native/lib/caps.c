/* process.capabilities, as runc's finalizeNamespace() applies them: the
 * bounding set is cut while the init is still root (PR_CAPBSET_DROP needs
 * CAP_SETPCAP), the user is switched with PR_SET_KEEPCAPS so the permitted
 * set survives setuid, then capset() sets effective/permitted/inheritable
 * and ambient caps are raised (they must be permitted and inheritable).
 * Async-signal-safe. */
#include <errno.h>
#include <linux/capability.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kapsel.h"

int kapsel_drop_bounding(const struct kapsel_request *req, struct kapsel_record *err) {
  if (!req->has_caps)
    return 0;
  for (int cap = 0; cap <= req->cap_last; cap++) {
    if (req->caps[KAPSEL_CAP_BOUNDING] & (1ULL << cap))
      continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) {
      kapsel_record_error(err, errno, "prctl", "PR_CAPBSET_DROP");
      return -err->err;
    }
  }
  return 0;
}

int kapsel_apply_caps(const struct kapsel_request *req, struct kapsel_record *err) {
  if (!req->has_caps)
    return 0;
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  for (int i = 0; i < 2; i++) {
    data[i].effective = (uint32_t)(req->caps[KAPSEL_CAP_EFFECTIVE] >> (32 * i));
    data[i].permitted = (uint32_t)(req->caps[KAPSEL_CAP_PERMITTED] >> (32 * i));
    data[i].inheritable = (uint32_t)(req->caps[KAPSEL_CAP_INHERITABLE] >> (32 * i));
  }
  if (syscall(SYS_capset, &hdr, data) < 0) {
    kapsel_record_error(err, errno, "capset", NULL);
    return -err->err;
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
    kapsel_record_error(err, errno, "prctl", "PR_CAP_AMBIENT_CLEAR_ALL");
    return -err->err;
  }
  for (int cap = 0; cap <= req->cap_last; cap++) {
    if (!(req->caps[KAPSEL_CAP_AMBIENT] & (1ULL << cap)))
      continue;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0) {
      kapsel_record_error(err, errno, "prctl", "PR_CAP_AMBIENT_RAISE");
      return -err->err;
    }
  }
  return 0;
}
