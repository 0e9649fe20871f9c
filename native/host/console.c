/*
 * Host-side terminal helpers of the kapsel shim (shim.c links this file):
 * a pty pair and passing a file descriptor over a unix socket
 * (SCM_RIGHTS), as runc's --console-socket protocol needs. Each function
 * returns 0 or a negative errno, as libkapsel does.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "console.h"

/*
 * Opens a pty pair. The slave is made raw: the guest's own pty does the
 * terminal work (echo, line editing, signals), so the host one must pass
 * bytes through untouched.
 */
int kapsel_host_openpty(int *master_out, int *slave_out)
{
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0)
    return -errno;
  char name[64];
  if (grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, name, sizeof(name)) != 0) {
    int e = errno;
    close(master);
    return -e;
  }
  int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) {
    int e = errno;
    close(master);
    return -e;
  }
  struct termios t;
  if (tcgetattr(slave, &t) == 0) {
    cfmakeraw(&t);
    tcsetattr(slave, TCSANOW, &t);
  }
  *master_out = master;
  *slave_out = slave;
  return 0;
}

/*
 * Sends `fd` over the unix socket at `path` as runc does: one message whose
 * payload is the terminal's name and whose control data carries the fd
 * (containerd's console.RecvFd reads exactly that).
 */
int kapsel_host_send_fd(const char *path, int fd, const char *name)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof(addr.sun_path))
    return -ENAMETOOLONG;
  strcpy(addr.sun_path, path);
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0)
    return -errno;
  if (connect(sock, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
    int e = errno;
    close(sock);
    return -e;
  }
  char control[CMSG_SPACE(sizeof(int))];
  memset(control, 0, sizeof(control));
  struct iovec iov = { .iov_base = (void *)name, .iov_len = strlen(name) };
  struct msghdr msg = {
    .msg_iov = &iov,
    .msg_iovlen = 1,
    .msg_control = control,
    .msg_controllen = sizeof(control),
  };
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  int e = errno;
  close(sock);
  return n < 0 ? -e : 0;
}

int kapsel_host_get_winsize(int fd, unsigned int *rows, unsigned int *cols)
{
  struct winsize ws;
  if (ioctl(fd, TIOCGWINSZ, &ws) < 0)
    return -errno;
  *rows = ws.ws_row;
  *cols = ws.ws_col;
  return 0;
}

/* Makes `fd` our controlling terminal, so a resize on the master sends us SIGWINCH. */
int kapsel_host_set_ctty(int fd)
{
  return ioctl(fd, TIOCSCTTY, 0) < 0 ? -errno : 0;
}
