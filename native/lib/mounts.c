/* One OCI mount, the way runc's mountToRootfs() and crun's do_mount() do
 * it. Async-signal-safe: runs in the container init after fork. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kapsel.h"

/* Flags that a bind mount ignores on creation and only honours on a
 * remount (mount(2): "MS_BIND ... the remaining bits in mountflags are
 * ignored", apart from MS_REC). */
#define BIND_REMOUNT_FLAGS                                                                      \
  (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME |  \
   MS_STRICTATIME)

int kapsel_mkdir_p(const char *path, mode_t mode) {
  char buf[PATH_MAX];
  if (path[0] == '\0')
    return 0;
  if (kapsel_strlcpy(buf, path, sizeof buf) >= sizeof buf)
    return -ENAMETOOLONG;
  for (char *p = buf + 1;; p++) {
    if (*p != '/' && *p != '\0')
      continue;
    char saved = *p;
    *p = '\0';
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
      return -errno;
    if (saved == '\0')
      return 0;
    *p = saved;
  }
}

/* A bind mount of a file needs a file to mount on (docker binds
 * /etc/resolv.conf, /etc/hosts, ...); everything else needs a directory. */
static int make_mountpoint(const struct kapsel_mount_entry *m, const char *target) {
  if (kapsel_mount_is_file(m)) {
    char parent[PATH_MAX];
    if (kapsel_strlcpy(parent, target, sizeof parent) >= sizeof parent)
      return -ENAMETOOLONG;
    char *slash = strrchr(parent, '/');
    if (slash != NULL && slash != parent) {
      *slash = '\0';
      int r = kapsel_mkdir_p(parent, 0755);
      if (r < 0)
        return r;
    }
    int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
      return errno == EISDIR ? 0 : -errno; /* an existing directory: mount fails later */
    close(fd);
    return 0;
  }
  return kapsel_mkdir_p(target, 0755);
}

int kapsel_mount_is_file(const struct kapsel_mount_entry *m) {
  struct stat st;
  return (m->flags & MS_BIND) && stat(m->source, &st) == 0 && !S_ISDIR(st.st_mode);
}

int kapsel_needs_finish(const struct kapsel_mount_entry *m) {
  return ((m->flags & MS_BIND) && (m->flags & BIND_REMOUNT_FLAGS)) || m->propagation != 0;
}

/* The mount itself, on `target` (which exists); m->target names it in
 * messages. */
int kapsel_mount_first(const struct kapsel_mount_entry *m, const char *target,
                       struct kapsel_record *err) {
  const char *fstype = m->fstype[0] != '\0' ? m->fstype : NULL;
  const char *data = m->data[0] != '\0' ? m->data : NULL;
  unsigned long flags = m->flags & MS_BIND ? m->flags & (MS_BIND | MS_REC) : m->flags;
  if (mount(m->source, target, fstype, flags, data) < 0) {
    int r = -errno;
    kapsel_record_mount_error(err, -r, m->source, m->target);
    return r;
  }
  return 0;
}

/* `target` must now name the new mount. */
int kapsel_mount_finish(const struct kapsel_mount_entry *m, const char *target,
                        struct kapsel_record *err) {
  int r;
  /* runc: "bind mount won't change mount options, we need remount to make
   * mount options effective". */
  if ((m->flags & MS_BIND) && (m->flags & BIND_REMOUNT_FLAGS)) {
    unsigned long fl = MS_REMOUNT | MS_BIND | (m->flags & BIND_REMOUNT_FLAGS);
    if (mount(NULL, target, NULL, fl, NULL) < 0) {
      r = -errno;
      kapsel_record_error(err, -r, "remount", m->target);
      return r;
    }
  }
  /* Propagation cannot be combined with other flags in one call (mount(2):
   * "changing the propagation type"), so it is a call of its own. */
  if (m->propagation != 0 && mount(NULL, target, NULL, m->propagation, NULL) < 0) {
    r = -errno;
    kapsel_record_error(err, -r, "make-propagation", m->target);
    return r;
  }
  return 0;
}

/* `target` is where to mount now (a path in the agent's namespace);
 * m->target is the path used in messages. */
int kapsel_do_mount(const struct kapsel_mount_entry *m, const char *target,
                    struct kapsel_record *err) {
  int r = make_mountpoint(m, target);
  if (r < 0) {
    kapsel_record_error(err, -r, "mkdir", m->target);
    return r;
  }
  r = kapsel_mount_first(m, target, err);
  return r < 0 ? r : kapsel_mount_finish(m, target, err);
}
