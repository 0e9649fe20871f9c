/* Parses the flat spawn request (protocol.h) on the Node thread, before any
 * fork: allocation is allowed here, and everything the monitor and the
 * container init will read is prepared now. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "kapsel.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct field {
  uint32_t tag;
  uint32_t len;
  const char *data;
};

/* Walks the fields; returns 1 with *f filled, 0 at the end, -EINVAL when a
 * field runs past the buffer. */
static int next_field(const char *buf, size_t len, size_t *off, struct field *f) {
  if (*off == len)
    return 0;
  if (len - *off < 8)
    return -EINVAL;
  memcpy(&f->tag, buf + *off, 4);
  memcpy(&f->len, buf + *off + 4, 4);
  *off += 8;
  if (f->len > len - *off)
    return -EINVAL;
  f->data = buf + *off;
  *off += f->len;
  return 1;
}

static int get_u32(const struct field *f, uint32_t *v) {
  if (f->len != 4)
    return -EINVAL;
  memcpy(v, f->data, 4);
  return 0;
}

/* Exactly `count` NUL-terminated strings fill data[0..len). */
static int get_strings(const char *data, size_t len, const char **out, size_t count) {
  size_t off = 0;
  for (size_t i = 0; i < count; i++) {
    const char *nul = off < len ? memchr(data + off, '\0', len - off) : NULL;
    if (nul == NULL)
      return -EINVAL;
    out[i] = data + off;
    off = (size_t)(nul - data) + 1;
  }
  return off == len ? 0 : -EINVAL;
}

static int fail(struct kapsel_record *err, const char *what, uint32_t tag) {
  kapsel_record_error(err, EINVAL, "spawn", NULL);
  snprintf(err->message, sizeof err->message, "spawn: bad request: %s (field %u)", what, tag);
  return -EINVAL;
}

void kapsel_request_free(struct kapsel_request *req) {
  free(req->storage);
  free(req->join);
  free(req->mounts);
  free(req->argv);
  free(req->envp);
  free(req->groups);
  free(req->rlimits);
  free(req->masked);
  free(req->readonly);
  free(req->sysctls);
  free(req->devices);
  free(req->seccomp_arches);
  free(req->seccomp_rules);
  kapsel_seccomp_free(req);
  free(req->rootfs_parent);
  memset(req, 0, sizeof *req);
}

int kapsel_request_parse(struct kapsel_request *req, const void *buf, size_t len,
                         struct kapsel_record *err) {
  struct field f = {0, 0, NULL};
  size_t off = 4;
  int r;

  memset(req, 0, sizeof *req);
  req->umask = 022;
  req->root_propagation = MS_SLAVE | MS_REC; /* runc's default: see prepareRoot() */
  req->cwd = "/";
  req->path_env = DEFAULT_PATH;
  if (len < 4 || memcmp(buf, KAPSEL_REQ_MAGIC, 4) != 0)
    return fail(err, "bad magic", 0);

  /* First pass: count repeated fields so the arrays are sized exactly. */
  while ((r = next_field(buf, len, &off, &f)) > 0) {
    switch (f.tag) {
    case KAPSEL_REQ_JOIN_NS: req->njoin++; break;
    case KAPSEL_REQ_MOUNT: req->nmounts++; break;
    case KAPSEL_REQ_ARG: req->argc++; break;
    case KAPSEL_REQ_ENV: req->envc++; break;
    case KAPSEL_REQ_GROUP: req->ngroups++; break;
    case KAPSEL_REQ_RLIMIT: req->nrlimits++; break;
    case KAPSEL_REQ_MASKED: req->nmasked++; break;
    case KAPSEL_REQ_READONLY: req->nreadonly++; break;
    case KAPSEL_REQ_SYSCTL: req->nsysctls++; break;
    case KAPSEL_REQ_DEVICE: req->ndevices++; break;
    case KAPSEL_REQ_SECCOMP_ARCH: req->nseccomp_arches++; break;
    case KAPSEL_REQ_SECCOMP_RULE: req->nseccomp_rules++; break;
    default: break;
    }
  }
  if (r < 0)
    return fail(err, "truncated field", f.tag);
  if (req->argc == 0)
    return fail(err, "args must not be empty", KAPSEL_REQ_ARG);
  if (req->njoin > KAPSEL_MAX_JOIN)
    return fail(err, "too many namespaces to join", KAPSEL_REQ_JOIN_NS);

  req->storage = malloc(len);
  req->join = calloc(req->njoin + 1, sizeof *req->join);
  req->mounts = calloc(req->nmounts + 1, sizeof *req->mounts);
  req->argv = calloc(req->argc + 1, sizeof *req->argv);
  req->envp = calloc(req->envc + 1, sizeof *req->envp);
  req->groups = calloc(req->ngroups + 1, sizeof *req->groups);
  req->rlimits = calloc(req->nrlimits + 1, sizeof *req->rlimits);
  req->masked = calloc(req->nmasked + 1, sizeof *req->masked);
  req->readonly = calloc(req->nreadonly + 1, sizeof *req->readonly);
  req->sysctls = calloc(req->nsysctls + 1, sizeof *req->sysctls);
  req->devices = calloc(req->ndevices + 1, sizeof *req->devices);
  req->seccomp_arches = calloc(req->nseccomp_arches + 1, sizeof *req->seccomp_arches);
  req->seccomp_rules = calloc(req->nseccomp_rules + 1, sizeof *req->seccomp_rules);
  if (!req->storage || !req->join || !req->mounts || !req->argv || !req->envp || !req->groups ||
      !req->rlimits || !req->masked || !req->readonly || !req->sysctls || !req->devices ||
      !req->seccomp_arches || !req->seccomp_rules) {
    kapsel_request_free(req);
    kapsel_record_error(err, ENOMEM, "spawn", NULL);
    return -ENOMEM;
  }
  memcpy(req->storage, buf, len);

  size_t nj = 0, nm = 0, na = 0, ne = 0, ng = 0, nrl = 0, nmk = 0, nro = 0, nsc = 0, ndv = 0;
  size_t nsa = 0, nsr = 0;
  off = 4;
  while ((r = next_field(req->storage, len, &off, &f)) > 0) {
    const char *s[4];
    uint32_t v = 0;
    int bad = 0;
    switch (f.tag) {
    case KAPSEL_REQ_NEW_NS: bad = get_u32(&f, &req->new_ns); break;
    case KAPSEL_REQ_JOIN_NS:
      bad = f.len < 4 || get_strings(f.data + 4, f.len - 4, s, 1);
      if (!bad) {
        memcpy(&v, f.data, 4);
        req->join[nj].nstype = (int)v;
        req->join[nj].path = s[0];
        req->join[nj].fd = -1;
        nj++;
      }
      break;
    case KAPSEL_REQ_MOUNT:
      bad = f.len < 8 || get_strings(f.data + 8, f.len - 8, s, 4);
      if (!bad) {
        struct kapsel_mount_entry *m = &req->mounts[nm++];
        memcpy(&m->flags, f.data, 4);
        memcpy(&m->propagation, f.data + 4, 4);
        m->source = s[0];
        m->target = s[1];
        m->fstype = s[2];
        m->data = s[3];
        bad = m->target[0] != '/';
        if (strcmp(m->target, "/dev") == 0 && strcmp(m->fstype, "tmpfs") == 0)
          req->dev_is_tmpfs = 1;
      }
      break;
    case KAPSEL_REQ_ROOTFS:
    case KAPSEL_REQ_HOSTNAME:
    case KAPSEL_REQ_ARG:
    case KAPSEL_REQ_ENV:
    case KAPSEL_REQ_CWD:
    case KAPSEL_REQ_CGROUP:
      bad = get_strings(f.data, f.len, s, 1);
      if (bad)
        break;
      if (f.tag == KAPSEL_REQ_ROOTFS)
        req->rootfs = s[0];
      else if (f.tag == KAPSEL_REQ_HOSTNAME)
        req->hostname = s[0];
      else if (f.tag == KAPSEL_REQ_CWD)
        req->cwd = s[0];
      else if (f.tag == KAPSEL_REQ_CGROUP)
        req->cgroup = s[0];
      else if (f.tag == KAPSEL_REQ_ARG)
        req->argv[na++] = (char *)s[0];
      else {
        req->envp[ne++] = (char *)s[0];
        /* runc sets the process env before exec.LookPath, so the lookup
         * uses the container's PATH; the last PATH= wins as in execve. */
        if (strncmp(s[0], "PATH=", 5) == 0)
          req->path_env = s[0] + 5;
      }
      break;
    case KAPSEL_REQ_UID: bad = get_u32(&f, &v); req->uid = v; break;
    case KAPSEL_REQ_GID: bad = get_u32(&f, &v); req->gid = v; break;
    case KAPSEL_REQ_GROUP: bad = get_u32(&f, &v); req->groups[ng++] = v; break;
    case KAPSEL_REQ_UMASK: bad = get_u32(&f, &v); req->umask = v & 07777; break;
    case KAPSEL_REQ_FLAGS: bad = get_u32(&f, &req->flags); break;
    case KAPSEL_REQ_ROOT_PROPAGATION:
      bad = get_u32(&f, &req->root_propagation);
      req->root_propagation_set = 1;
      break;
    case KAPSEL_REQ_TERMINAL:
      bad = f.len != 8;
      if (!bad) {
        uint32_t rc[2];
        memcpy(rc, f.data, 8);
        req->terminal = 1;
        req->rows = (uint16_t)rc[0];
        req->cols = (uint16_t)rc[1];
      }
      break;
    case KAPSEL_REQ_CAPS:
      bad = f.len != 40;
      if (!bad) {
        uint32_t w[10];
        memcpy(w, f.data, 40);
        for (int i = 0; i < 5; i++)
          req->caps[i] = (uint64_t)w[2 * i] | ((uint64_t)w[2 * i + 1] << 32);
        req->has_caps = 1;
      }
      break;
    case KAPSEL_REQ_RLIMIT:
      bad = f.len != 20;
      if (!bad) {
        uint32_t w[5];
        memcpy(w, f.data, 20);
        req->rlimits[nrl].resource = (int)w[0];
        req->rlimits[nrl].soft = (uint64_t)w[1] | ((uint64_t)w[2] << 32);
        req->rlimits[nrl].hard = (uint64_t)w[3] | ((uint64_t)w[4] << 32);
        nrl++;
      }
      break;
    case KAPSEL_REQ_OOM_SCORE_ADJ:
      bad = get_u32(&f, &v);
      req->oom_score_adj = (int32_t)v;
      req->has_oom_score_adj = 1;
      break;
    case KAPSEL_REQ_MASKED:
    case KAPSEL_REQ_READONLY:
    case KAPSEL_REQ_SECCOMP_ARCH:
    case KAPSEL_REQ_UID_MAP:
    case KAPSEL_REQ_GID_MAP:
      bad = get_strings(f.data, f.len, s, 1);
      if (bad)
        break;
      if (f.tag == KAPSEL_REQ_MASKED)
        req->masked[nmk++] = s[0];
      else if (f.tag == KAPSEL_REQ_READONLY)
        req->readonly[nro++] = s[0];
      else if (f.tag == KAPSEL_REQ_SECCOMP_ARCH)
        req->seccomp_arches[nsa++] = s[0];
      else if (f.tag == KAPSEL_REQ_UID_MAP)
        req->uid_map = s[0];
      else
        req->gid_map = s[0];
      bad = (f.tag == KAPSEL_REQ_MASKED || f.tag == KAPSEL_REQ_READONLY) && s[0][0] != '/';
      break;
    case KAPSEL_REQ_SYSCTL:
      bad = get_strings(f.data, f.len, s, 2);
      if (!bad) {
        req->sysctls[nsc].key = s[0];
        req->sysctls[nsc].value = s[1];
        nsc++;
        bad = s[0][0] == '/' || strstr(s[0], "..") != NULL;
      }
      break;
    case KAPSEL_REQ_DEVICE:
      bad = f.len < 20 || get_strings(f.data + 20, f.len - 20, s, 1);
      if (!bad) {
        uint32_t w[5];
        memcpy(w, f.data, 20);
        struct kapsel_device *d = &req->devices[ndv++];
        d->mode = w[0];
        d->major = w[1];
        d->minor = w[2];
        d->uid = w[3];
        d->gid = w[4];
        d->path = s[0];
        bad = s[0][0] != '/';
      }
      break;
    case KAPSEL_REQ_SECCOMP:
      bad = f.len != 8;
      if (!bad) {
        memcpy(&req->seccomp_default, f.data, 4);
        memcpy(&req->seccomp_flags, f.data + 4, 4);
        req->has_seccomp = 1;
      }
      break;
    case KAPSEL_REQ_SECCOMP_RULE:
      req->seccomp_rules[nsr].data = f.data;
      req->seccomp_rules[nsr].len = f.len;
      nsr++;
      break; /* checked by kapsel_seccomp_compile */
    default: bad = 1; break;
    }
    if (bad) {
      uint32_t tag = f.tag;
      kapsel_request_free(req);
      return fail(err, "malformed field", tag);
    }
  }

  /* Mounts and a rootfs only make sense in a mount namespace of our own:
   * without one they would land in the agent's namespace. */
  if ((req->rootfs != NULL || req->nmounts > 0) && !(req->new_ns & CLONE_NEWNS)) {
    kapsel_request_free(req);
    return fail(err, "rootfs and mounts need a new mount namespace", KAPSEL_REQ_NEW_NS);
  }
  if (req->nmounts > 0 && req->rootfs == NULL) {
    kapsel_request_free(req);
    return fail(err, "mounts need a rootfs", KAPSEL_REQ_MOUNT);
  }
  if (req->hostname != NULL && !(req->new_ns & CLONE_NEWUTS)) {
    kapsel_request_free(req);
    return fail(err, "hostname needs a new uts namespace", KAPSEL_REQ_HOSTNAME);
  }
  return 0;
}
