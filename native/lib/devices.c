/* The default /dev of an OCI container when /dev is a fresh tmpfs: the
 * runtime-spec "Default Devices" list and the /dev symlinks runc creates in
 * setupDevSymlinks(). Runs in the container init with cwd at the rootfs,
 * before pivot_root, so every path is relative. */
#include <errno.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "kapsel.h"

static const struct {
  const char *path;
  const char *name; /* the container path, for messages */
  unsigned major, minor;
} devices[] = {
    {"dev/null", "/dev/null", 1, 3},       {"dev/zero", "/dev/zero", 1, 5},
    {"dev/full", "/dev/full", 1, 7},       {"dev/random", "/dev/random", 1, 8},
    {"dev/urandom", "/dev/urandom", 1, 9}, {"dev/tty", "/dev/tty", 5, 0},
};

static const struct {
  const char *target;
  const char *path;
  const char *name;
} links[] = {
    {"/proc/self/fd", "dev/fd", "/dev/fd"},
    {"/proc/self/fd/0", "dev/stdin", "/dev/stdin"},
    {"/proc/self/fd/1", "dev/stdout", "/dev/stdout"},
    {"/proc/self/fd/2", "dev/stderr", "/dev/stderr"},
    {"pts/ptmx", "dev/ptmx", "/dev/ptmx"},
};

int kapsel_create_default_devices(struct kapsel_record *err) {
  /* runc clears the umask around createDevices() so the modes are exact. */
  mode_t old = umask(0);
  for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++) {
    dev_t dev = makedev(devices[i].major, devices[i].minor);
    if (mknod(devices[i].path, S_IFCHR | 0666, dev) < 0 && errno != EEXIST) {
      int e = errno;
      umask(old);
      kapsel_record_error(err, e, "mknod", devices[i].name);
      return -e;
    }
  }
  umask(old);
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
    /* An existing entry wins, e.g. /dev/ptmx made by a devpts bind. */
    if (symlink(links[i].target, links[i].path) < 0 && errno != EEXIST) {
      int e = errno;
      kapsel_record_error(err, e, "symlink", links[i].name);
      return -e;
    }
  }
  return 0;
}
