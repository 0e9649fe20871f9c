/*
 * Shared by the guest's PID 1 (init.c) and the boot-floor init (floor.c).
 *
 * Error convention (as crun's design-docs/error_handling.md): a function
 * returns 0 or a negative errno, and it has already printed one line naming
 * the step, the syscall and the path, e.g.
 *   kapsel-init: mount `/sys/fs/cgroup` (cgroup2): No such device
 * The caller only decides whether the failure is fatal.
 *
 * The small helpers live here as static inline functions because the
 * Makefile links each init from its own file plus modules.c only.
 */
#ifndef KAPSEL_INIT_H
#define KAPSEL_INIT_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* "kapsel-init" or "kapsel-floor"; every console line starts with it. */
extern const char *log_prefix;

/* Whether to print one line per loaded module (kapsel.log=debug). */
extern int log_verbose;

/* PID 1 has no stdio buffering worth trusting before a power-off: format
 * into a stack buffer and write(2) the whole line to the console at once. */
static inline void vlogf(int errnum, const char *fmt, va_list ap)
{
  char buf[1024];
  int n = snprintf(buf, sizeof(buf), "%s: ", log_prefix);
  if (n < 0)
    return;
  int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
  if (m > 0)
    n += m;
  if ((size_t)n > sizeof(buf) - 64)
    n = (int)sizeof(buf) - 64;
  if (errnum)
    n += snprintf(buf + n, sizeof(buf) - (size_t)n, ": %s", strerror(errnum));
  buf[n++] = '\n';
  ssize_t r = write(STDERR_FILENO, buf, (size_t)n);
  (void)r;
}

__attribute__((format(printf, 1, 2))) static inline void log_msg(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vlogf(0, fmt, ap);
  va_end(ap);
}

/* Prints "prefix: <what>: <strerror(errnum)>" and returns -errnum. */
__attribute__((format(printf, 2, 3))) static inline int log_err(int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vlogf(errnum, fmt, ap);
  va_end(ap);
  return -errnum;
}

/* mkdir that accepts an existing directory. */
static inline int ensure_dir(const char *path, mode_t mode)
{
  if (mkdir(path, mode) < 0 && errno != EEXIST)
    return log_err(errno, "mkdir `%s`", path);
  return 0;
}

static inline int mount_fs(const char *source, const char *target, const char *fstype,
                           unsigned long flags, const char *data)
{
  int ret = ensure_dir(target, 0755);
  if (ret < 0)
    return ret;
  if (mount(source, target, fstype, flags, data) < 0) {
    /* devtmpfs may already be mounted by the kernel (CONFIG_DEVTMPFS_MOUNT). */
    if (errno == EBUSY)
      return 0;
    return log_err(errno, "mount `%s` (%s)", target, fstype);
  }
  return 0;
}

/* Makes sure fds 0-2 are open on the console. The kernel opens
 * /dev/console for PID 1 only if the initramfs has that node; when it does
 * not, this is the first chance to get a console (after /dev is mounted). */
static inline void ensure_console(void)
{
  if (fcntl(STDERR_FILENO, F_GETFD) >= 0)
    return;
  int fd = open("/dev/console", O_RDWR | O_NOCTTY);
  if (fd < 0)
    return;
  for (int i = 0; i < 3; i++)
    if (fcntl(i, F_GETFD) < 0)
      dup2(fd, i);
  if (fd > 2)
    close(fd);
}

static inline void sleep_ms(long ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* Never returns. With -no-reboot, QEMU exits on RB_POWER_OFF (ACPI S5).
 * If power-off itself fails, exiting PID 1 panics the kernel, and
 * panic=-1 plus -no-reboot turns that into a QEMU exit as well: never a
 * reboot loop. */
__attribute__((noreturn)) static inline void power_off(void)
{
  sync();
  reboot(RB_POWER_OFF);
  log_err(errno, "reboot(RB_POWER_OFF)");
  reboot(RB_AUTOBOOT);
  _exit(1);
}

/* Loads every .ko listed (one absolute path a line, '#' comments) in order
 * with finit_module(2), and removes each file once it is loaded. A module
 * that is already loaded (EEXIST) counts as loaded. Stops at the first
 * failure. On success stores how many modules it loaded in *count and the
 * bytes of the files it removed in *removed (either may be NULL). */
int load_modules(const char *list_path, int *count, long long *removed);

#endif
