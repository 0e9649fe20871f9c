/* process.terminal: a pty pair made on the Node thread before fork. The
 * container init makes the slave its controlling terminal and stdio; Node
 * keeps the master. kapsel_tty_resize() is TtyWinResize. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "kapsel.h"

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
