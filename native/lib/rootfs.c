/* Builds the container's root inside its new mount namespace and makes it
 * "/": runc's prepareRootfs() + pivotRoot(). Async-signal-safe. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kapsel.h"

static int fail(struct kapsel_record *err, const char *syscall, const char *path) {
  int e = errno;
  kapsel_record_error(err, e, syscall, path);
  return -e;
}

/* runc pivotRoot(): pivot_root(".", ".") stacks the old root on top of the
 * new one at "/", so no put_old directory is needed inside the rootfs; the
 * old root is then made rslave (so the unmount cannot propagate to the
 * agent's namespace) and detached. There is no silent fallback to chroot
 * (escapable with a second chroot): like runc, MS_MOVE + chroot only when
 * asked for (--no-pivot). PID 1 leaves the initramfs so this works in the
 * guest (native/init/init.c, leave_initramfs). */
static int pivot_root_dot(const char *rootfs, struct kapsel_record *err) {
  int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (oldroot < 0)
    return fail(err, "open", "/");
  if (syscall(SYS_pivot_root, ".", ".") < 0) {
    int e = errno;
    close(oldroot);
    errno = e;
    return fail(err, "pivot_root", rootfs);
  }
  /* The kernel leaves cwd on the old root, but makes no promise about it. */
  int r = fchdir(oldroot);
  close(oldroot);
  if (r < 0)
    return fail(err, "fchdir", "/");
  if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
    return fail(err, "mount", "/");
  if (umount2(".", MNT_DETACH) < 0)
    return fail(err, "umount2", "/");
  if (chdir("/") < 0)
    return fail(err, "chdir", "/");
  return 0;
}

/* runc msMoveRoot() for --no-pivot, for roots pivot_root(2) cannot leave
 * (an initramfs without switch_root). */
static int move_root(struct kapsel_record *err) {
  if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
    return fail(err, "mount", "/");
  if (chroot(".") < 0)
    return fail(err, "chroot", ".");
  if (chdir("/") < 0)
    return fail(err, "chdir", "/");
  return 0;
}

int kapsel_prepare_rootfs(const struct kapsel_request *req, struct kapsel_record *err) {
  int r;

  /* Stop our mounts propagating back to the agent: runc makes "/" rslave
   * (rootfsPropagation, default MS_SLAVE|MS_REC) before touching anything. */
  if (mount(NULL, "/", NULL, req->root_propagation, NULL) < 0)
    return fail(err, "mount", "/");
  /* pivot_root needs the new root to be a mount point. */
  if (mount(req->rootfs, req->rootfs, "bind", MS_BIND | MS_REC, NULL) < 0)
    return fail(err, "mount", req->rootfs);
  if (chdir(req->rootfs) < 0)
    return fail(err, "chdir", req->rootfs);

  for (size_t i = 0; i < req->nmounts; i++) {
    const struct kapsel_mount_entry *m = &req->mounts[i];
    char rel[PATH_MAX];
    const char *t = m->target;
    while (*t == '/')
      t++;
    /* TODO(security): like runc's securejoin, resolve the target inside the
     * rootfs so a symlink planted in the image cannot point a mount outside. */
    if (kapsel_strlcpy(rel, *t != '\0' ? t : ".", sizeof rel) >= sizeof rel) {
      kapsel_record_error(err, ENAMETOOLONG, "mount", m->target);
      return -ENAMETOOLONG;
    }
    r = kapsel_do_mount(m, rel, err);
    if (r < 0)
      return r;
  }

  if (req->dev_is_tmpfs) {
    r = kapsel_create_default_devices(err);
    if (r < 0)
      return r;
  }

  if (req->flags & KAPSEL_FLAG_NO_PIVOT) {
    r = move_root(err);
  } else {
    r = pivot_root_dot(req->rootfs, err);
  }
  if (r < 0)
    return r;

  /* runc setReadonly(): a read-only bind remount of the new root. */
  if ((req->flags & KAPSEL_FLAG_READONLY_ROOT) &&
      mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
    return fail(err, "remount", "/");
  return 0;
}
