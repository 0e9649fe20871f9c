/* lo in a network namespace the container init made: up, as runc's
 * "loopback" network strategy does (libcontainer/network_linux.go) for a
 * namespace it created, never for one it joined. A new namespace's lo is
 * down, and bringing it up is what gives it 127.0.0.1/8 and ::1 (the kernel
 * adds them on NETDEV_UP). Async-signal-safe: one socket, two ioctls. */
#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kapsel.h"

int kapsel_loopback_up(struct kapsel_record *err) {
  struct ifreq ifr;
  int r = 0;
  /* Any socket of the namespace takes interface ioctls; a UDP one needs no
   * more than CAP_NET_ADMIN for SIOCSIFFLAGS. */
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    r = -errno;
    kapsel_record_error(err, -r, "socket", "lo");
    return r;
  }
  memset(&ifr, 0, sizeof ifr);
  kapsel_strlcpy(ifr.ifr_name, "lo", sizeof ifr.ifr_name);
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
    r = -errno;
    kapsel_record_error(err, -r, "ioctl SIOCGIFFLAGS", "lo");
  } else if (!(ifr.ifr_flags & IFF_UP)) {
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) {
      r = -errno;
      kapsel_record_error(err, -r, "ioctl SIOCSIFFLAGS", "lo");
    }
  }
  close(fd);
  return r;
}
