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
 * agent's namespace) and detached. There is no MS_MOVE + chroot path
 * (escapable with a second chroot; runc's --no-pivot): PID 1 leaves the
 * initramfs so this always works in the guest (native/init/init.c,
 * leave_initramfs), and the runtime accepts and ignores --no-pivot. */
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

/* One OCI mount, its target resolved inside the rootfs (securejoin.c) and
 * mounted through /proc/self/fd/N, then reopened so the remount and the
 * propagation change reach the new mount, as runc's WithProcfd does. */
static int mount_in_root(int rootfd, const struct kapsel_mount_entry *m,
                         struct kapsel_record *err) {
  char fdpath[32];
  int fd = kapsel_open_in_root(rootfd, m->target,
                               kapsel_mount_is_file(m) ? KAPSEL_CREATE_FILE : KAPSEL_CREATE_DIR);
  if (fd < 0) {
    kapsel_record_error(err, -fd, "mkdir", m->target);
    return fd;
  }
  int r = kapsel_mount_first(m, kapsel_fd_path(fd, fdpath), err);
  close(fd);
  if (r < 0 || !kapsel_needs_finish(m))
    return r;
  fd = kapsel_open_in_root(rootfd, m->target, KAPSEL_CREATE_NONE);
  if (fd < 0) {
    kapsel_record_error(err, -fd, "open", m->target);
    return fd;
  }
  r = kapsel_mount_finish(m, kapsel_fd_path(fd, fdpath), err);
  close(fd);
  return r;
}

int kapsel_prepare_rootfs(const struct kapsel_request *req, struct kapsel_record *err) {
  int r = 0;

  /* Stop our mounts propagating back to the agent: runc makes "/" rslave
   * (rootfsPropagation, default MS_SLAVE|MS_REC) before touching anything. */
  if (mount(NULL, "/", NULL, req->root_propagation, NULL) < 0)
    return fail(err, "mount", "/");
  /* runc rootfsParentMountPropagation(): pivot_root refuses a shared
   * parent of the new root, and an unbindable one cannot be bound below, so
   * with a shared or unbindable rootfsPropagation the mount holding the
   * rootfs becomes private (the bind below then is, too); "/" gets the
   * requested propagation after the pivot. */
  if (req->rootfs_parent != NULL && mount(NULL, req->rootfs_parent, NULL, MS_PRIVATE, NULL) < 0)
    return fail(err, "mount", req->rootfs_parent);
  /* pivot_root needs the new root to be a mount point. */
  if (mount(req->rootfs, req->rootfs, "bind", MS_BIND | MS_REC, NULL) < 0)
    return fail(err, "mount", req->rootfs);
  if (chdir(req->rootfs) < 0)
    return fail(err, "chdir", req->rootfs);
  int rootfd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    return fail(err, "open", req->rootfs);

  for (size_t i = 0; i < req->nmounts && r >= 0; i++)
    r = mount_in_root(rootfd, &req->mounts[i], err);
  if (r >= 0 && req->dev_is_tmpfs)
    r = kapsel_create_default_devices(rootfd, err);
  if (r >= 0)
    r = kapsel_create_spec_devices(req, rootfd, err);
  close(rootfd);
  if (r < 0)
    return r;

  r = pivot_root_dot(req->rootfs, err);
  if (r < 0)
    return r;
  /* runc's order after the root is in place: sysctls (through the
   * container's own /proc), readonlyPaths, maskedPaths, then the root
   * itself read-only. */
  rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    return fail(err, "open", "/");
  r = kapsel_apply_sysctls(req, err);
  if (r >= 0)
    r = kapsel_apply_readonly_paths(req, rootfd, err);
  if (r >= 0)
    r = kapsel_apply_masked_paths(req, rootfd, err);
  close(rootfd);
  if (r < 0)
    return r;

  /* runc >= 1.4 (prepareRootfs(), runc#4724) applies a shared or unbindable
   * rootfsPropagation to the new "/" too: the call before the pivot reached
   * the agent's root, not the bind of the rootfs that "/" now is, so
   * "unbindable" was lost. private and slave already hold through the
   * parent mount and the rslave bind; runc skips them here, and so do we.
   * Made after the readonly and masked paths (runc: just after the pivot):
   * those are binds of mounts below "/", which "runbindable" would refuse. */
  if (req->root_propagation_set && !(req->root_propagation & (MS_PRIVATE | MS_SLAVE)) &&
      mount(NULL, "/", NULL, req->root_propagation, NULL) < 0)
    return fail(err, "mount", "/");

  /* runc setReadonly(): a read-only bind remount of the new root. */
  if ((req->flags & KAPSEL_FLAG_READONLY_ROOT) &&
      mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
    return fail(err, "remount", "/");
  return 0;
}
