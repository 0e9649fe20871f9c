/* /dev of an OCI container: the runtime-spec "Default Devices" list and the
 * symlinks runc creates in setupDevSymlinks() when /dev is a fresh tmpfs,
 * then linux.devices. Runs in the container init before pivot_root; every
 * path is resolved inside the rootfs (securejoin.c), so a /dev symlink in
 * the image cannot put a node on the agent's side. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "kapsel.h"

static const struct {
  const char *path;
  unsigned major, minor;
} devices[] = {
    {"/dev/null", 1, 3},    {"/dev/zero", 1, 5}, {"/dev/full", 1, 7},
    {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0},
};

static const struct {
  const char *target;
  const char *path;
} links[] = {
    {"/proc/self/fd", "/dev/fd"},
    {"/proc/self/fd/0", "/dev/stdin"},
    {"/proc/self/fd/1", "/dev/stdout"},
    {"/proc/self/fd/2", "/dev/stderr"},
    {"pts/ptmx", "/dev/ptmx"},
};

/* Opens the directory that holds `path`, inside the root, creating it;
 * *name points at the last component. */
static int open_parent(int rootfd, const char *path, char *buf, const char **name) {
  if (kapsel_strlcpy(buf, path, PATH_MAX) >= PATH_MAX)
    return -ENAMETOOLONG;
  char *slash = strrchr(buf, '/');
  if (slash == NULL || slash[1] == '\0')
    return -EINVAL;
  *name = path + (slash - buf) + 1;
  if (slash == buf)
    slash[1] = '\0';
  else
    *slash = '\0';
  return kapsel_open_in_root(rootfd, buf, KAPSEL_CREATE_DIR);
}

/* mknod, or where that is not allowed (a user namespace: runc does the
 * same) a bind mount of the agent's node of the same path. */
static int make_node(int rootfd, const char *path, mode_t mode, dev_t dev, uid_t uid, gid_t gid,
                     int chown_it, struct kapsel_record *err) {
  char buf[PATH_MAX], fdpath[32];
  const char *name;
  int dir = open_parent(rootfd, path, buf, &name);
  if (dir < 0) {
    kapsel_record_error(err, -dir, "mkdir", path);
    return dir;
  }
  int r = 0;
  if (mknodat(dir, name, mode, dev) < 0) {
    if (errno == EEXIST) {
      close(dir);
      return 0;
    }
    if (errno != EPERM) {
      r = -errno;
      kapsel_record_error(err, -r, "mknod", path);
      close(dir);
      return r;
    }
    int fd = openat(dir, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0)
      close(fd);
    fd = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || mount(path, kapsel_fd_path(fd, fdpath), NULL, MS_BIND, NULL) < 0) {
      r = -errno;
      kapsel_record_error(err, -r, "mount", path);
    }
    if (fd >= 0)
      close(fd);
    close(dir);
    return r;
  }
  if (chown_it && fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
    r = -errno;
    kapsel_record_error(err, -r, "chown", path);
  }
  close(dir);
  return r;
}

int kapsel_create_default_devices(int rootfd, struct kapsel_record *err) {
  char buf[PATH_MAX];
  const char *name;
  int r = 0;
  /* runc clears the umask around createDevices() so the modes are exact. */
  mode_t old = umask(0);
  for (size_t i = 0; i < sizeof devices / sizeof devices[0] && r >= 0; i++)
    r = make_node(rootfd, devices[i].path, S_IFCHR | 0666,
                  makedev(devices[i].major, devices[i].minor), 0, 0, 0, err);
  umask(old);
  for (size_t i = 0; i < sizeof links / sizeof links[0] && r >= 0; i++) {
    int dir = open_parent(rootfd, links[i].path, buf, &name);
    /* An existing entry wins, e.g. /dev/ptmx made by a devpts bind. */
    if (dir < 0 || (symlinkat(links[i].target, dir, name) < 0 && errno != EEXIST)) {
      r = dir < 0 ? dir : -errno;
      kapsel_record_error(err, -r, "symlink", links[i].path);
    }
    if (dir >= 0)
      close(dir);
  }
  return r;
}

/* linux.devices: runc createDeviceNode(), mode, owner and all. */
int kapsel_create_spec_devices(const struct kapsel_request *req, int rootfd,
                               struct kapsel_record *err) {
  int r = 0;
  mode_t old = umask(0);
  for (size_t i = 0; i < req->ndevices && r >= 0; i++) {
    const struct kapsel_device *d = &req->devices[i];
    r = make_node(rootfd, d->path, d->mode, makedev(d->major, d->minor), d->uid, d->gid, 1, err);
  }
  umask(old);
  return r;
}
