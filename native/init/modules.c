/*
 * Kernel module loading for the guest inits.
 *
 * The guest has no modprobe and no modules.dep: rootfs/build.sh computes the
 * dependency closure of the modules we need from each .ko's `depends=` field
 * and writes them, dependencies first, to /lib/modules/load.list. Here we
 * only insert them in that order, and remove each file once it is loaded
 * (load_one), so this runs once per boot.
 */
#include "init.h"

#include <stdlib.h>
#include <sys/syscall.h>

const char *log_prefix = "kapsel";
int log_verbose;

static int load_one(const char *path, long long *removed)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return log_err(errno, "open `%s`", path);
  struct stat st;
  long long size = fstat(fd, &st) == 0 ? (long long)st.st_size : 0;
  /* finit_module has no glibc wrapper in bookworm's glibc 2.36. */
  long r = syscall(SYS_finit_module, fd, "", 0);
  int saved = errno;
  close(fd);
  /* EEXIST: built in, or loaded already. Either way the module is
   * there, which is all we want. */
  if (r < 0 && saved != EEXIST)
    return log_err(saved, "finit_module `%s`", path);
  /* The .ko files sit in the initramfs, which is guest RAM for the
   * guest's whole life, and a VM template's RAM is copied into every
   * sandbox started from it: 2.2 MiB of each clone's RAM that nothing
   * reads again (the kernel keeps its own copy of a loaded module).
   * Failing to remove one costs only that memory. */
  if (unlink(path) == 0)
    *removed += size;
  else if (log_verbose)
    log_msg("cannot remove %s once loaded: %s", path, strerror(errno));
  if (log_verbose)
    log_msg("loaded module %s%s", path, r < 0 ? " (already present)" : "");
  return 0;
}

int load_modules(const char *list_path, int *count, long long *removed)
{
  int fd = open(list_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return log_err(errno, "open `%s`", list_path);

  /* The list is a few hundred bytes; read it whole. */
  char buf[16384];
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      int saved = errno;
      close(fd);
      return log_err(saved, "read `%s`", list_path);
    }
    if (n == 0)
      break;
    len += (size_t)n;
    if (len == sizeof(buf) - 1) {
      close(fd);
      return log_err(EFBIG, "read `%s`", list_path);
    }
  }
  close(fd);
  buf[len] = '\0';

  int loaded = 0;
  long long removed_bytes = 0;
  char *save = NULL;
  for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    while (*line == ' ' || *line == '\t')
      line++;
    char *end = line + strlen(line);
    while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
      *--end = '\0';
    if (*line == '\0' || *line == '#')
      continue;
    int ret = load_one(line, &removed_bytes);
    if (ret < 0)
      return ret;
    loaded++;
  }
  if (count)
    *count = loaded;
  if (removed)
    *removed = removed_bytes;
  return 0;
}
