/* linux.maskedPaths and linux.readonlyPaths, as runc's maskPath() and
 * readonlyPath(), after pivot_root, every path resolved inside the new root
 * (securejoin.c) and mounted through /proc/self/fd/N. A path that does not
 * exist is skipped, as in runc. Async-signal-safe. */
#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "kapsel.h"

/* Flags a read-only bind remount must keep: in a user namespace the
 * kernel refuses to clear locked ones (runc getMountFlags-style). */
static unsigned long kept_flags(const char *path) {
  struct statvfs sv;
  unsigned long fl = 0;
  if (statvfs(path, &sv) < 0)
    return 0;
  if (sv.f_flag & ST_NOSUID)
    fl |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV)
    fl |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC)
    fl |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME)
    fl |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME)
    fl |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME)
    fl |= MS_RELATIME;
  return fl;
}

int kapsel_apply_readonly_paths(const struct kapsel_request *req, int rootfd,
                                struct kapsel_record *err) {
  char fdpath[32];
  for (size_t i = 0; i < req->nreadonly; i++) {
    const char *p = req->readonly[i];
    int fd = kapsel_open_in_root(rootfd, p, KAPSEL_CREATE_NONE);
    if (fd == -ENOENT)
      continue;
    if (fd < 0 || mount(kapsel_fd_path(fd, fdpath), fdpath, NULL, MS_BIND | MS_REC, NULL) < 0) {
      kapsel_record_error(err, fd < 0 ? -fd : errno, "mount", p);
      if (fd >= 0)
        close(fd);
      return -err->err;
    }
    close(fd);
    /* Reopen: the bind is now on top, and the remount must reach it. */
    fd = kapsel_open_in_root(rootfd, p, KAPSEL_CREATE_NONE);
    if (fd < 0) {
      kapsel_record_error(err, -fd, "open", p);
      return fd;
    }
    kapsel_fd_path(fd, fdpath);
    unsigned long fl = MS_BIND | MS_REMOUNT | MS_RDONLY | kept_flags(fdpath);
    int r = mount(NULL, fdpath, NULL, fl, NULL);
    int e = errno;
    close(fd);
    if (r < 0) {
      kapsel_record_error(err, e, "remount", p);
      return -e;
    }
  }
  return 0;
}

int kapsel_apply_masked_paths(const struct kapsel_request *req, int rootfd,
                              struct kapsel_record *err) {
  char fdpath[32];
  for (size_t i = 0; i < req->nmasked; i++) {
    const char *p = req->masked[i];
    struct stat st;
    int fd = kapsel_open_in_root(rootfd, p, KAPSEL_CREATE_NONE);
    if (fd == -ENOENT)
      continue;
    int r = fd < 0 ? fd : fstat(fd, &st) < 0 ? -errno : 0;
    if (r == 0) {
      kapsel_fd_path(fd, fdpath);
      /* runc: /dev/null over a file, an empty read-only tmpfs over a
       * directory. */
      if (S_ISDIR(st.st_mode))
        r = mount("tmpfs", fdpath, "tmpfs", MS_RDONLY, NULL);
      else
        r = mount("/dev/null", fdpath, NULL, MS_BIND, NULL);
      if (r < 0)
        r = -errno;
    }
    if (fd >= 0)
      close(fd);
    if (r < 0) {
      kapsel_record_error(err, -r, "mount", p);
      return r;
    }
  }
  return 0;
}
