/* process.terminal: a pty pair made on the Node thread before fork. The
 * container init makes the slave its controlling terminal and stdio; Node
 * keeps the master. kapsel_tty_resize() is TtyWinResize. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "kapsel.h"

/* The id outside a user namespace that `id` inside it maps to, from a
 * uid_map/gid_map text ("inside outside count" lines); -1 when unmapped. */
static long map_id(const char *map, unsigned long id) {
  const char *p = map;
  while (p != NULL && *p != '\0') {
    char *end;
    unsigned long inside = strtoul(p, &end, 10);
    unsigned long outside = strtoul(end, &end, 10);
    unsigned long count = strtoul(end, &end, 10);
    if (id >= inside && id - inside < count)
      return (long)(outside + (id - inside));
    p = strchr(end, '\n');
    if (p != NULL)
      p++;
  }
  return -1;
}

/* The slave belongs to the process user, as runc's console does (runc makes
 * it inside the container; ours comes from the agent's devpts, so it is
 * chowned here, to the ids the user namespace maps the user to). */
static int chown_slave(const struct kapsel_request *req, int slave, struct kapsel_record *err) {
  long uid = req->uid, gid = req->gid;
  if (req->uid_map != NULL)
    uid = map_id(req->uid_map, req->uid);
  if (req->gid_map != NULL)
    gid = map_id(req->gid_map, req->gid);
  if (uid < 0 || gid < 0) {
    kapsel_record_error(err, EINVAL, "fchown", "pty");
    return -EINVAL;
  }
  if (fchown(slave, (uid_t)uid, (gid_t)gid) < 0) {
    kapsel_record_error(err, errno, "fchown", "pty");
    return -err->err;
  }
  return 0;
}

int kapsel_pty_open(const struct kapsel_request *req, int *master, int *slave,
                    struct kapsel_record *err) {
  char name[64];
  *master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (*master < 0) {
    kapsel_record_error(err, errno, "posix_openpt", "/dev/ptmx");
    return -err->err;
  }
  if (grantpt(*master) < 0 || unlockpt(*master) < 0 || ptsname_r(*master, name, sizeof name) != 0) {
    kapsel_record_error(err, errno, "unlockpt", "/dev/ptmx");
    close(*master);
    return -err->err;
  }
  if (req->rows != 0 || req->cols != 0) {
    struct winsize ws = {.ws_row = req->rows, .ws_col = req->cols};
    if (ioctl(*master, TIOCSWINSZ, &ws) < 0) {
      kapsel_record_error(err, errno, "ioctl", "TIOCSWINSZ");
      close(*master);
      return -err->err;
    }
  }
  *slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (*slave < 0) {
    kapsel_record_error(err, errno, "open", name);
    close(*master);
    return -err->err;
  }
  if (chown_slave(req, *slave, err) < 0) {
    close(*slave);
    close(*master);
    return -err->err;
  }
  return 0;
}

int kapsel_tty_resize(int32_t fd, uint32_t rows, uint32_t cols, struct kapsel_record *err) {
  struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
  if (ioctl(fd, TIOCSWINSZ, &ws) < 0) {
    kapsel_record_error(err, errno, "ioctl", "TIOCSWINSZ");
    return -err->err;
  }
  return 0;
}
