/* Error records and byte helpers usable after fork() in a multi-threaded
 * process: only syscalls and stack/static memory, no stdio, no malloc. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kapsel.h"

size_t kapsel_strlcpy(char *dst, const char *src, size_t size) {
  size_t n = strlen(src);
  if (size > 0) {
    size_t c = n < size - 1 ? n : size - 1;
    memcpy(dst, src, c);
    dst[c] = '\0';
  }
  return n;
}

size_t kapsel_strlcat(char *dst, const char *src, size_t size) {
  size_t used = strnlen(dst, size);
  if (used == size)
    return used + strlen(src);
  return used + kapsel_strlcpy(dst + used, src, size - used);
}

/* strerror() may translate through gettext, which can take locks and
 * allocate. strerrordesc_np (glibc >= 2.32) is a plain table lookup of the
 * English text, which is also what crun and runc print. */
const char *kapsel_strerror(int err, char *scratch, size_t len) {
  const char *desc = strerrordesc_np(err);
  if (desc != NULL)
    return desc;
  char digits[KAPSEL_UTOA_LEN];
  kapsel_strlcpy(scratch, "errno ", len);
  kapsel_strlcat(scratch, kapsel_utoa(err < 0 ? (unsigned)-err : (unsigned)err, digits), len);
  return scratch;
}

const char *kapsel_utoa(unsigned v, char *buf) {
  size_t i = KAPSEL_UTOA_LEN;
  buf[--i] = '\0';
  do {
    buf[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0 && i > 0);
  return buf + i;
}

int kapsel_write_file(const char *path, int flags, const char *data, size_t len,
                      struct kapsel_record *err) {
  int fd = open(path, O_WRONLY | O_CLOEXEC | flags);
  if (fd < 0 || write(fd, data, len) < 0) {
    kapsel_record_error(err, errno, "write", path);
    if (fd >= 0)
      close(fd);
    return -err->err;
  }
  close(fd);
  return 0;
}

static void set_errno_text(struct kapsel_record *rec, int err) {
  char scratch[32];
  kapsel_strlcat(rec->message, ": ", sizeof rec->message);
  kapsel_strlcat(rec->message, kapsel_strerror(err, scratch, sizeof scratch),
                 sizeof rec->message);
}

/* "syscall `path`: strerror", as crun words it. */
void kapsel_record_error(struct kapsel_record *rec, int err, const char *syscall,
                         const char *path) {
  memset(rec, 0, sizeof *rec);
  rec->type = KAPSEL_MSG_ERROR;
  rec->err = err;
  kapsel_strlcpy(rec->syscall, syscall, sizeof rec->syscall);
  kapsel_strlcpy(rec->message, syscall, sizeof rec->message);
  if (path != NULL) {
    kapsel_strlcpy(rec->path, path, sizeof rec->path);
    kapsel_strlcat(rec->message, " `", sizeof rec->message);
    kapsel_strlcat(rec->message, path, sizeof rec->message);
    kapsel_strlcat(rec->message, "`", sizeof rec->message);
  }
  set_errno_text(rec, err);
}

/* "mount `source` to `target`: strerror", crun's do_mount() wording; the
 * record's path is the target, which is what the caller asked for. */
void kapsel_record_mount_error(struct kapsel_record *rec, int err, const char *source,
                               const char *target) {
  kapsel_record_error(rec, err, "mount", target);
  kapsel_strlcpy(rec->message, "mount `", sizeof rec->message);
  kapsel_strlcat(rec->message, source != NULL && source[0] != '\0' ? source : "none",
                 sizeof rec->message);
  kapsel_strlcat(rec->message, "` to `", sizeof rec->message);
  kapsel_strlcat(rec->message, target, sizeof rec->message);
  kapsel_strlcat(rec->message, "`", sizeof rec->message);
  set_errno_text(rec, err);
}

/* send(), not write(): MSG_NOSIGNAL turns a vanished peer into EPIPE
 * instead of a SIGPIPE, whatever the signal dispositions are. */
int kapsel_send_full(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Returns 1 when the whole buffer was read, 0 on EOF before any byte, or a
 * negative errno (-EPIPE for EOF in the middle of a record). */
int kapsel_read_full(int fd, void *buf, size_t len) {
  char *p = buf;
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(fd, p + got, len - got);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0)
      return got == 0 ? 0 : -EPIPE;
    got += (size_t)n;
  }
  return 1;
}
