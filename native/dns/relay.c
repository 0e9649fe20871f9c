/*
 * kapsel-dns-relay: Docker's embedded DNS server, reachable from a container
 * that runs in a VM.
 *
 * Docker writes `nameserver 127.0.0.11` into the resolv.conf of a container
 * on a user-defined network; its resolver listens in the container's HOST
 * network namespace (an iptables DNAT from 127.0.0.11:53 to a random port in
 * that namespace's OUTPUT chain), which the guest cannot reach
 * (kata-containers/runtime#175). This program runs in the container's GUEST
 * network namespace (the agent starts it with `nsenter --net=`), serves
 * <address>:53 over UDP and TCP there, and carries every query over a
 * virtio-serial port to the sandbox monitor on the host, which sits in the
 * host namespace and asks Docker's resolver from there
 * (runtime/src/network/dns-relay.ts). Answers come back the same way.
 *
 * Usage: kapsel-dns-relay ADDRESS PORT [WATCH_PID]
 *   ADDRESS    IPv4 address to serve on port 53 (127.0.0.11)
 *   PORT       a virtio-serial port name (found in /sys/class/virtio-ports),
 *              a device path, or a unix stream socket path (tests)
 *   WATCH_PID  exit when this process exits (the container's init)
 * Prints "ready" on stdout once both sockets are bound; errors on stderr.
 *
 * Frames on the port, both directions (all integers big-endian):
 *   u8 version (1) | u8 transport (0 UDP, 1 TCP) | u16 length N | u32 id | N bytes DNS message
 * The host answers with the query's id and transport; the transport is kept
 * end to end so that Docker's resolver sees a UDP query as UDP and can set
 * TC, after which the client retries over TCP (RFC 1035 4.2.1).
 * TCP clients send 2-byte length-prefixed messages, several per connection,
 * answered in any order (RFC 7766 6.2.1.1).
 *
 * Single-threaded, poll()-based; every table is bounded. A query not answered
 * within QUERY_TTL_MS is forgotten (the client has retried or given up by
 * then: glibc waits 5 s a try).
 *
 * Errors follow crun's convention: one line naming the step, the syscall and
 * the path or address, e.g.
 *   kapsel-dns-relay: bind `127.0.0.11:53/udp`: Address already in use
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "../lib/be.h"

#define FRAME_VERSION 1
#define FRAME_HDR 8
#define T_UDP 0
#define T_TCP 1
/* A DNS header is 12 bytes (RFC 1035 4.1.1); nothing shorter is a message. */
#define DNS_MIN 12
#define DNS_MAX 65535

#define MAX_PENDING 256
#define MAX_CONNS 32
/* RFC 7766 6.2.1.1 lets a client pipeline; past this many unanswered queries
 * on one connection we stop reading it until answers go out. */
#define MAX_CONN_PENDING 16
#define QUERY_TTL_MS 6000
#define TCP_IDLE_MS 10000
/* How long to leave the port alone after the host side went away. */
#define PORT_RETRY_MS 250
#define PORT_OUT_CAP (256 * 1024)
#define PORT_IN_CAP (FRAME_HDR + DNS_MAX)
#define CONN_IN_CAP (2 + DNS_MAX)
#define CONN_OUT_CAP (2 * (2 + DNS_MAX))

#define PORTS_DIR "/sys/class/virtio-ports"

struct pending {
  int used;
  uint32_t id;
  uint8_t transport;
  int64_t deadline;
  struct sockaddr_in peer; /* UDP */
  int conn;                /* TCP: index into conns */
  uint32_t conn_gen;
};

struct conn {
  int fd; /* -1: free */
  uint32_t gen;
  int eof;
  int pending;
  int64_t last_active;
  uint8_t *in, *out;
  size_t in_len, out_len;
};

static struct pending pending[MAX_PENDING];
static struct conn conns[MAX_CONNS];
static uint32_t next_id = 1;
static uint32_t next_gen = 1;

static const char *port_arg;
static int port_fd = -1;
static int port_is_socket;
static int port_up = 1; /* whether the last state logged was "connected" */
static int64_t port_retry_at;
static uint8_t port_in[PORT_IN_CAP];
static size_t port_in_len;
static uint8_t port_out[PORT_OUT_CAP];
static size_t port_out_len;

static int udp_fd = -1, tcp_fd = -1;
static char listen_name[64];

__attribute__((format(printf, 2, 3))) static void log_err(int errnum, const char *fmt, ...)
{
  char buf[512];
  int n = snprintf(buf, sizeof(buf), "kapsel-dns-relay: ");
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
  va_end(ap);
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

static int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- the port to the host ------------------------------------------------ */

/* PORT as a path: a name without a slash is a virtio-serial port's name. */
static int resolve_port(const char *arg, char *path, size_t size)
{
  if (strchr(arg, '/') != NULL) {
    snprintf(path, size, "%s", arg);
    return 0;
  }
  DIR *d = opendir(PORTS_DIR);
  if (d == NULL)
    return -errno;
  struct dirent *e;
  int found = -ENOENT;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char name_path[512], name[128];
    snprintf(name_path, sizeof(name_path), PORTS_DIR "/%s/name", e->d_name);
    int fd = open(name_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      continue;
    ssize_t n = read(fd, name, sizeof(name) - 1);
    close(fd);
    if (n <= 0)
      continue;
    name[n] = '\0';
    name[strcspn(name, "\n")] = '\0';
    if (strcmp(name, arg) == 0) {
      snprintf(path, size, "/dev/%s", e->d_name);
      found = 0;
      break;
    }
  }
  closedir(d);
  return found;
}

static void port_reset_buffers(void)
{
  port_in_len = 0;
  port_out_len = 0;
}

/* Opens the port, or for a unix socket connects; -errno on failure. */
static int port_open(void)
{
  char path[512];
  int r = resolve_port(port_arg, path, sizeof(path));
  if (r < 0)
    return r;
  struct stat st;
  if (stat(path, &st) < 0)
    return -errno;
  if (S_ISSOCK(st.st_mode)) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
      return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
      int e = errno;
      close(fd);
      return -e;
    }
    if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
      int e = errno;
      close(fd);
      return -e;
    }
    port_is_socket = 1;
    port_fd = fd;
    return 0;
  }
  int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  port_is_socket = 0;
  port_fd = fd;
  return 0;
}

/*
 * The host side went away. A virtio-serial port then reads 0 and polls
 * POLLHUP at once until the host reconnects (and its next bytes belong to
 * the new connection), so it stays open and is only left alone for a while;
 * a socket is closed and connected again. Half-sent frames are dropped on
 * both sides: a new connection starts at a frame boundary.
 */
static void port_lost(const char *why)
{
  if (port_up)
    log_err(0, "the host side of `%s` is gone (%s); queries are dropped until it is back", port_arg,
            why);
  port_up = 0;
  if (port_is_socket && port_fd >= 0) {
    close(port_fd);
    port_fd = -1;
  }
  port_reset_buffers();
  port_retry_at = now_ms() + PORT_RETRY_MS;
}

static int port_usable(void) { return port_fd >= 0 && port_retry_at <= now_ms(); }

/* Queues one whole frame, or drops it if the queue is full (DNS over UDP is
 * lossy anyway; a TCP client times out). A frame is never queued in part. */
static int port_send(uint8_t transport, uint32_t id, const uint8_t *msg, size_t len)
{
  if (!port_usable() || PORT_OUT_CAP - port_out_len < FRAME_HDR + len)
    return -1;
  uint8_t *p = port_out + port_out_len;
  p[0] = FRAME_VERSION;
  p[1] = transport;
  put16(p + 2, (uint16_t)len);
  put32(p + 4, id);
  memcpy(p + FRAME_HDR, msg, len);
  port_out_len += FRAME_HDR + len;
  return 0;
}

static void port_flush(void)
{
  while (port_out_len > 0) {
    /* virtio_console takes at most 32 KiB a write; the rest waits. */
    ssize_t n = write(port_fd, port_out, port_out_len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN)
        return;
      log_err(errno, "write `%s`", port_arg);
      port_lost("write failed");
      return;
    }
    memmove(port_out, port_out + n, port_out_len - (size_t)n);
    port_out_len -= (size_t)n;
  }
}

/* --- queries ------------------------------------------------------------- */

static struct pending *pending_new(void)
{
  for (int i = 0; i < MAX_PENDING; i++)
    if (!pending[i].used) {
      struct pending *p = &pending[i];
      memset(p, 0, sizeof(*p));
      p->used = 1;
      p->id = next_id++;
      if (next_id == 0)
        next_id = 1;
      p->deadline = now_ms() + QUERY_TTL_MS;
      return p;
    }
  return NULL;
}

static int pending_free_slots(void)
{
  int n = 0;
  for (int i = 0; i < MAX_PENDING; i++)
    n += !pending[i].used;
  return n;
}

static void pending_release(struct pending *p)
{
  if (p->transport == T_TCP) {
    struct conn *c = &conns[p->conn];
    if (c->fd >= 0 && c->gen == p->conn_gen && c->pending > 0)
      c->pending--;
  }
  p->used = 0;
}

/* --- TCP connections ----------------------------------------------------- */

static void conn_close(struct conn *c)
{
  if (c->fd >= 0)
    close(c->fd);
  free(c->in);
  free(c->out);
  memset(c, 0, sizeof(*c));
  c->fd = -1;
}

static void conn_accept(void)
{
  for (int budget = 0; budget < MAX_CONNS; budget++) {
    int fd = accept4(tcp_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
        log_err(errno, "accept `%s/tcp`", listen_name);
      return;
    }
    struct conn *c = NULL;
    for (int i = 0; i < MAX_CONNS && c == NULL; i++)
      if (conns[i].fd < 0)
        c = &conns[i];
    if (c == NULL) {
      /* Full: refuse the newcomer; its resolver falls back or retries. */
      close(fd);
      continue;
    }
    c->in = malloc(CONN_IN_CAP);
    c->out = malloc(CONN_OUT_CAP);
    if (c->in == NULL || c->out == NULL) {
      free(c->in);
      free(c->out);
      c->in = c->out = NULL;
      close(fd);
      continue;
    }
    c->fd = fd;
    c->gen = next_gen++;
    c->last_active = now_ms();
  }
}

/* Forwards every complete length-prefixed message in c->in, while there is
 * room; closes a connection that sends something that is not DNS. */
static void conn_process(struct conn *c, int index)
{
  size_t off = 0;
  while (c->in_len - off >= 2 && c->pending < MAX_CONN_PENDING) {
    size_t len = get16(c->in + off);
    if (len < DNS_MIN) {
      conn_close(c);
      return;
    }
    if (c->in_len - off < 2 + len)
      break;
    struct pending *p = port_usable() ? pending_new() : NULL;
    if (p != NULL) {
      p->transport = T_TCP;
      p->conn = index;
      p->conn_gen = c->gen;
      if (port_send(T_TCP, p->id, c->in + off + 2, len) == 0)
        c->pending++;
      else
        p->used = 0;
    }
    /* Without a slot or a port the query is dropped: the client times out
     * and retries, as with a lost UDP datagram. */
    off += 2 + len;
  }
  memmove(c->in, c->in + off, c->in_len - off);
  c->in_len -= off;
}

static void conn_read(struct conn *c, int index)
{
  ssize_t n = read(c->fd, c->in + c->in_len, CONN_IN_CAP - c->in_len);
  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR)
      conn_close(c);
    return;
  }
  if (n == 0) {
    /* A client may half-close after its last query; answer it first. */
    c->eof = 1;
    return;
  }
  c->in_len += (size_t)n;
  c->last_active = now_ms();
  conn_process(c, index);
}

static void conn_flush(struct conn *c)
{
  while (c->out_len > 0) {
    ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN)
        conn_close(c);
      return;
    }
    memmove(c->out, c->out + n, c->out_len - (size_t)n);
    c->out_len -= (size_t)n;
  }
}

/* --- UDP ------------------------------------------------------------------ */

static void udp_read(void)
{
  static uint8_t buf[DNS_MAX];
  for (int budget = 0; budget < 64; budget++) {
    struct sockaddr_in peer;
    socklen_t plen = sizeof(peer);
    ssize_t n = recvfrom(udp_fd, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &plen);
    if (n < 0)
      return;
    if (n < DNS_MIN || plen != sizeof(peer))
      continue;
    struct pending *p = port_usable() ? pending_new() : NULL;
    if (p == NULL)
      continue;
    p->transport = T_UDP;
    p->peer = peer;
    if (port_send(T_UDP, p->id, buf, (size_t)n) < 0)
      p->used = 0;
  }
}

/* --- answers from the host ----------------------------------------------- */

static void answer(uint8_t transport, uint32_t id, const uint8_t *msg, size_t len)
{
  struct pending *p = NULL;
  for (int i = 0; i < MAX_PENDING && p == NULL; i++)
    if (pending[i].used && pending[i].id == id)
      p = &pending[i];
  if (p == NULL || p->transport != transport)
    return; /* expired, or not ours */
  if (transport == T_UDP) {
    if (sendto(udp_fd, msg, len, MSG_NOSIGNAL, (struct sockaddr *)&p->peer, sizeof(p->peer)) < 0 &&
        errno != EAGAIN)
      log_err(errno, "sendto `%s` port %u", inet_ntoa(p->peer.sin_addr), ntohs(p->peer.sin_port));
    pending_release(p);
    return;
  }
  struct conn *c = &conns[p->conn];
  int index = p->conn;
  int live = c->fd >= 0 && c->gen == p->conn_gen;
  pending_release(p);
  if (!live)
    return;
  if (CONN_OUT_CAP - c->out_len < 2 + len) {
    /* The client does not read its answers: let it go. */
    conn_close(c);
    return;
  }
  put16(c->out + c->out_len, (uint16_t)len);
  memcpy(c->out + c->out_len + 2, msg, len);
  c->out_len += 2 + len;
  c->last_active = now_ms();
  conn_flush(c);
  if (c->fd >= 0)
    conn_process(c, index); /* room again for queries it had pipelined */
}

static void port_read(void)
{
  ssize_t n = read(port_fd, port_in + port_in_len, sizeof(port_in) - port_in_len);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR)
      return;
    log_err(errno, "read `%s`", port_arg);
    port_lost("read failed");
    return;
  }
  if (n == 0) {
    port_lost("end of file");
    return;
  }
  if (!port_up)
    log_err(0, "the host side of `%s` is back", port_arg);
  port_up = 1;
  port_in_len += (size_t)n;
  size_t off = 0;
  while (port_in_len - off >= FRAME_HDR) {
    const uint8_t *h = port_in + off;
    size_t len = get16(h + 2);
    if (h[0] != FRAME_VERSION || h[1] > T_TCP || len < DNS_MIN) {
      log_err(0, "read `%s`: not a kapsel DNS frame (version %u, transport %u, length %zu)",
              port_arg, h[0], h[1], len);
      port_lost("bad frame");
      return;
    }
    if (port_in_len - off < FRAME_HDR + len)
      break;
    answer(h[1], get32(h + 4), h + FRAME_HDR, len);
    off += FRAME_HDR + len;
  }
  memmove(port_in, port_in + off, port_in_len - off);
  port_in_len -= off;
}

/* --- setup and the loop -------------------------------------------------- */

static int bind_listener(int type, const struct sockaddr_in *sa)
{
  const char *proto = type == SOCK_DGRAM ? "udp" : "tcp";
  int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    log_err(errno, "socket `%s/%s`", listen_name, proto);
    return -1;
  }
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
    log_err(errno, "setsockopt SO_REUSEADDR `%s/%s`", listen_name, proto);
    close(fd);
    return -1;
  }
  /* lo may still be coming up in a namespace made a moment ago: 127.0.0.0/8
   * is only local once it is (EADDRNOTAVAIL before). Wait up to 2 s. */
  for (int tries = 0;; tries++) {
    if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
      break;
    if (errno != EADDRNOTAVAIL || tries >= 40) {
      log_err(errno, "bind `%s/%s`", listen_name, proto);
      close(fd);
      return -1;
    }
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (type == SOCK_STREAM && listen(fd, 64) < 0) {
    log_err(errno, "listen `%s/%s`", listen_name, proto);
    close(fd);
    return -1;
  }
  return fd;
}

static void expire(int64_t now)
{
  for (int i = 0; i < MAX_PENDING; i++)
    if (pending[i].used && pending[i].deadline <= now)
      pending_release(&pending[i]);
  for (int i = 0; i < MAX_CONNS; i++) {
    struct conn *c = &conns[i];
    if (c->fd < 0)
      continue;
    int idle = c->pending == 0 && c->out_len == 0;
    if (idle && (c->eof || now - c->last_active >= TCP_IDLE_MS))
      conn_close(c);
  }
}

int main(int argc, char **argv)
{
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: kapsel-dns-relay ADDRESS PORT [WATCH_PID]\n");
    return 2;
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53)};
  if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
    log_err(0, "listen address `%s` is not an IPv4 address", argv[1]);
    return 2;
  }
  snprintf(listen_name, sizeof(listen_name), "%s:53", argv[1]);
  port_arg = argv[2];
  int watch_fd = -1;
  if (argc == 4) {
    char *end;
    long pid = strtol(argv[3], &end, 10);
    if (*end != '\0' || pid <= 0) {
      log_err(0, "watch pid `%s` is not a pid", argv[3]);
      return 2;
    }
    watch_fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (watch_fd < 0) {
      log_err(errno, "pidfd_open `%ld`", pid);
      return 1;
    }
  }
  /* Gone with the agent that started us: nobody else would stop us. */
  pid_t parent = getppid();
  if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
    return 1;
  signal(SIGPIPE, SIG_IGN);
  for (int i = 0; i < MAX_CONNS; i++)
    conns[i].fd = -1;

  udp_fd = bind_listener(SOCK_DGRAM, &sa);
  if (udp_fd < 0)
    return 1;
  tcp_fd = bind_listener(SOCK_STREAM, &sa);
  if (tcp_fd < 0)
    return 1;
  int r = port_open();
  if (r < 0) {
    log_err(-r, "open `%s`", port_arg);
    return 1;
  }
  if (write(STDOUT_FILENO, "ready\n", 6) != 6)
    log_err(errno, "write `ready` to stdout");

  for (;;) {
    int64_t now = now_ms();
    expire(now);
    if (port_fd < 0 && port_retry_at <= now) {
      r = port_open();
      if (r < 0)
        port_retry_at = now + PORT_RETRY_MS;
    }

    enum { P_UDP, P_TCP, P_WATCH, P_PORT, P_CONN };
    struct pollfd fds[P_CONN + MAX_CONNS];
    int conn_of[P_CONN + MAX_CONNS];
    int nfds = P_CONN;
    int room = pending_free_slots() > 0;
    fds[P_UDP] = (struct pollfd){.fd = room ? udp_fd : -1, .events = POLLIN};
    fds[P_TCP] = (struct pollfd){.fd = tcp_fd, .events = POLLIN};
    fds[P_WATCH] = (struct pollfd){.fd = watch_fd, .events = POLLIN};
    int port_live = port_usable();
    fds[P_PORT] = (struct pollfd){.fd = port_live ? port_fd : -1,
                                  .events = (short)(POLLIN | (port_out_len > 0 ? POLLOUT : 0))};
    for (int i = 0; i < MAX_CONNS; i++) {
      struct conn *c = &conns[i];
      if (c->fd < 0)
        continue;
      short ev = 0;
      if (!c->eof && c->pending < MAX_CONN_PENDING && c->in_len < CONN_IN_CAP && room)
        ev |= POLLIN;
      if (c->out_len > 0)
        ev |= POLLOUT;
      conn_of[nfds] = i;
      fds[nfds++] = (struct pollfd){.fd = c->fd, .events = ev};
    }

    /* Wake for the next expiry at the latest (checked at 1 s granularity),
     * and for the port once it may be used again. */
    int timeout = 1000;
    if (!port_live && port_retry_at > now && port_retry_at - now < timeout)
      timeout = (int)(port_retry_at - now);
    if (poll(fds, (nfds_t)nfds, timeout) < 0) {
      if (errno == EINTR)
        continue;
      log_err(errno, "poll");
      return 1;
    }
    if (fds[P_WATCH].revents)
      return 0; /* the container's init is gone, and its network with it */
    if (port_live && fds[P_PORT].revents) {
      if (fds[P_PORT].revents & POLLIN)
        port_read();
      else if (fds[P_PORT].revents & (POLLHUP | POLLERR))
        port_lost("hang-up");
      if (port_fd >= 0 && port_usable() && (fds[P_PORT].revents & POLLOUT))
        port_flush();
    }
    if (fds[P_UDP].revents & POLLIN)
      udp_read();
    if (fds[P_TCP].revents & POLLIN)
      conn_accept();
    for (int k = P_CONN; k < nfds; k++) {
      struct conn *c = &conns[conn_of[k]];
      if (c->fd != fds[k].fd || fds[k].revents == 0)
        continue;
      if (fds[k].revents & POLLIN)
        conn_read(c, conn_of[k]);
      else if (fds[k].revents & (POLLHUP | POLLERR))
        conn_close(c);
      if (c->fd >= 0 && (fds[k].revents & POLLOUT))
        conn_flush(c);
    }
    if (port_fd >= 0 && port_usable() && port_out_len > 0)
      port_flush();
  }
}
