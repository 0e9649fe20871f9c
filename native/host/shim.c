/*
 * kapsel-shim: the host process that stands for one guest process, the pid
 * `kapsel create` and `exec -d` write to --pid-file and an engine waits on
 * (runc's equivalent is the container process itself). It holds the stdio
 * its caller gave (or a pty sent over --console-socket), relays it through
 * the sandbox process, forwards the signals it gets and ends as the guest
 * process ended. All the gRPC work is the sandbox process's
 * (runtime/src/sandbox/shim-server.ts); this program only moves bytes, so
 * that a pod does not pay for a Node process per guest process.
 *
 * Usage: kapsel-shim --socket PATH [--exec-id ID] [--console-socket PATH]
 *                    [--log FILE] [--log-format json|text] -- CONTAINER-ID
 * Started by runtime/src/shim/spawn.ts with the ready pipe on fd 3: "ok" is
 * written there once the sandbox process relays the process, else the
 * reason it cannot (and the exit status is 1).
 *
 * Frames on the socket, both directions (runtime/src/shim/frame.ts defines
 * the same layout; integers big-endian):
 *   u8 type | u32 length N (at most FRAME_MAX) | N bytes
 * shim -> sandbox: HELLO (u8 flags, bit 0 terminal | u16 id length | id |
 *   exec id), STDIN data, STDIN_EOF, SIGNAL (u32 signo), RESIZE (u16 rows |
 *   u16 columns). sandbox -> shim: OK or ERROR (text) once, after HELLO;
 *   then STDOUT and STDERR data, and last EXIT (i32 exit code | i32 signal)
 *   or LOST (text: why the process's end is unknown).
 *
 * Single-threaded, poll()-based. Output is written to fd 1 and 2 at most
 * PIPE_BUF at a time after POLLOUT, so a reader that stops reading stalls
 * the relay (and, through the socket, the guest process) but never the
 * forwarding of signals.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../lib/kapsel.h"
#include "console.h"
#include "../lib/be.h"

enum frame_type {
  FR_HELLO = 1,
  FR_OK = 2,
  FR_ERROR = 3,
  FR_STDOUT = 4,
  FR_STDERR = 5,
  FR_EXIT = 6,
  FR_LOST = 7,
  FR_STDIN = 8,
  FR_STDIN_EOF = 9,
  FR_SIGNAL = 10,
  FR_RESIZE = 11,
};

#define FRAME_HDR 5
#define FRAME_MAX 65536
/* fd 3: the pipe startDetached (runtime/src/sys/detached.ts) waits on. */
#define READY_FD 3
/* Status of a shim whose guest process's end is unknown (shim/stop-reason.ts LOST_EXIT). */
#define LOST_EXIT 255
/* How long a shim whose connection dropped waits for the sandbox process to be gone. */
#define PEER_GONE_WAIT_MS 3000

/* runtime/src/sys/signals.ts FORWARDED_SIGNALS: what runc's signal handler passes on. */
static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGCONT };
/*
 * The deaths a shim repeats (the Node shim's list: the signals whose
 * default action ended a Node process), kept so that a waiter sees the same
 * status as before; any other signal death is exit(code).
 */
static const int raisable[] = { SIGHUP, SIGINT, SIGQUIT, SIGABRT, SIGKILL, SIGUSR2, SIGALRM, SIGTERM };

static const char *opt_socket, *opt_exec_id = "", *opt_console, *opt_log, *opt_id;
static int log_json = 1;
static FILE *log_file;

static int sock = -1;
static pid_t peer_pid;
static int in_fd = 0, out_fd = 1, err_fd = 2;
static int terminal;

static uint8_t rbuf[FRAME_HDR + FRAME_MAX];
static size_t rlen;
static uint8_t inbuf[FRAME_MAX];

/* One output frame being written to fd 1 or 2. */
static int pend_fd = -1;
static const uint8_t *pend_ptr;
static size_t pend_len;
static int out_dead, err_dead;
static int sigpipe_sent;

static void json_string(FILE *f, const char *s)
{
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

/*
 * One line of the shim's log in the shape runtime/src/sys/log.ts gives
 * kapsel's (logrus-like: level, msg, the process's ids, extra numbers,
 * time), so docs/faults.md's reading of shim logs holds for this program.
 * The variadic arguments are "key", "value" string pairs ending at NULL; a
 * key "#name" gives a number.
 */
static void log_line(const char *level, const char *msg, ...)
{
  if (log_file == NULL)
    return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[40];
  size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(when + n, sizeof(when) - n, ".%03ldZ", ts.tv_nsec / 1000000);
  va_list ap;
  if (log_json) {
    fprintf(log_file, "{\"level\":\"%s\",\"msg\":", level);
    json_string(log_file, msg);
    fputs(",\"id\":", log_file);
    json_string(log_file, opt_id);
    fputs(",\"execId\":", log_file);
    json_string(log_file, opt_exec_id);
    va_start(ap, msg);
    for (const char *k; (k = va_arg(ap, const char *)) != NULL;) {
      const char *v = va_arg(ap, const char *);
      /* A key "#name" is a number, written bare. */
      if (k[0] == '#')
        fprintf(log_file, ",\"%s\":%s", k + 1, v);
      else {
        fprintf(log_file, ",\"%s\":", k);
        json_string(log_file, v);
      }
    }
    va_end(ap);
    fprintf(log_file, ",\"time\":\"%s\"}\n", when);
  } else {
    fprintf(log_file, "time=\"%s\" level=%s msg=", when, level);
    json_string(log_file, msg);
    fputs(" id=", log_file);
    json_string(log_file, opt_id);
    fputs(" execId=", log_file);
    json_string(log_file, opt_exec_id);
    va_start(ap, msg);
    for (const char *k; (k = va_arg(ap, const char *)) != NULL;) {
      const char *v = va_arg(ap, const char *);
      if (k[0] == '#')
        fprintf(log_file, " %s=%s", k + 1, v);
      else {
        fprintf(log_file, " %s=", k);
        json_string(log_file, v);
      }
    }
    va_end(ap);
    fputc('\n', log_file);
  }
  fflush(log_file);
}

/* The verdict for our starter, once: "ok" or why we cannot relay. */
static void tell_creator(const char *msg)
{
  static int told;
  if (told)
    return;
  told = 1;
  ssize_t r = write(READY_FD, msg, strlen(msg));
  (void)r;
  close(READY_FD);
}

static __attribute__((noreturn)) void fail(const char *step, int err)
{
  char msg[512];
  const char *name = strerrorname_np(err);
  snprintf(msg, sizeof(msg), "%s: %s", step, name != NULL ? name : strerror(err));
  log_line("error", "shim failed", "error", msg, NULL);
  tell_creator(msg);
  exit(1);
}

/* Sends one frame; a failure means the sandbox process is gone, which the read side reports. */
static void send_frame(uint8_t type, const void *payload, size_t len)
{
  uint8_t hdr[FRAME_HDR];
  hdr[0] = type;
  put32(hdr + 1, (uint32_t)len);
  if (kapsel_send_full(sock, hdr, sizeof(hdr)) == 0 && len > 0)
    kapsel_send_full(sock, payload, len);
}

static void send_u32(uint8_t type, uint32_t v)
{
  uint8_t b[4];
  put32(b, v);
  send_frame(type, b, sizeof(b));
}

static void send_resize(void)
{
  unsigned int rows, cols;
  if (kapsel_host_get_winsize(out_fd, &rows, &cols) < 0 || rows == 0)
    return;
  uint8_t b[4];
  put16(b, (uint16_t)rows);
  put16(b + 2, (uint16_t)cols);
  send_frame(FR_RESIZE, b, sizeof(b));
}

/*
 * Ends this process the way the guest process ended (relay.ts exitLike): by
 * the same signal when it was killed by one a waiter can see
 * (WIFSIGNALED, as with runc), else with its exit code.
 */
static __attribute__((noreturn)) void exit_like(int code, int sig)
{
  for (size_t i = 0; i < sizeof(raisable) / sizeof(raisable[0]); i++) {
    if (raisable[i] != sig)
      continue;
    signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    sigprocmask(SIG_UNBLOCK, &one, NULL);
    raise(sig);
  }
  exit(code & 0xff);
}

/* Whether `pid` has exited (gone, or a zombie), from /proc/PID/stat. */
static int exited(pid_t pid)
{
  char path[64], stat[512];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 1;
  ssize_t n = read(fd, stat, sizeof(stat) - 1);
  close(fd);
  if (n <= 0)
    return 1;
  stat[n] = '\0';
  char *close_paren = strrchr(stat, ')');
  return close_paren == NULL || close_paren[1] == '\0' || close_paren[2] == 'Z' ||
         close_paren[2] == 'X';
}

/*
 * The connection ended with neither EXIT nor LOST: the sandbox process died
 * (SIGKILL) or is on its way out. Its socket closes before the kernel makes
 * it a zombie, and `state` reads a dead sandbox process as the reason the
 * container stopped (container/state.ts lostReason): wait for that, so an
 * engine that reads `state` once we are gone sees why.
 */
static __attribute__((noreturn)) void lost(const char *why)
{
  log_line("error", "lost the process: its VM is gone", "reason", why, NULL);
  for (int t = 0; peer_pid > 0 && t < PEER_GONE_WAIT_MS && !exited(peer_pid); t += 50)
    usleep(50 * 1000);
  exit(LOST_EXIT);
}

static void connect_sandbox(void)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  char step[PATH_MAX + 64];
  snprintf(step, sizeof(step), "connect to the sandbox process at %s", opt_socket);
  if (strlen(opt_socket) >= sizeof(addr.sun_path))
    fail(step, ENAMETOOLONG);
  strcpy(addr.sun_path, opt_socket);
  sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0)
    fail("socket", errno);
  if (connect(sock, (struct sockaddr *)&addr, sizeof(addr)) < 0)
    fail(step, errno);
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
    peer_pid = cred.pid;
}

/* Reads exactly one frame, blocking (the handshake); returns its type and fills `len`. */
static int read_frame_blocking(uint32_t *len)
{
  while (rlen < FRAME_HDR || rlen < FRAME_HDR + get32(rbuf + 1)) {
    if (rlen >= FRAME_HDR && get32(rbuf + 1) > FRAME_MAX)
      return -EPROTO;
    ssize_t n = read(sock, rbuf + rlen, sizeof(rbuf) - rlen);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return n < 0 ? -errno : -ECONNRESET;
    rlen += (size_t)n;
  }
  *len = get32(rbuf + 1);
  return rbuf[0];
}

/* Drops the first frame (of `len` payload bytes) from rbuf. */
static void consume(uint32_t len)
{
  size_t used = FRAME_HDR + len;
  memmove(rbuf, rbuf + used, rlen - used);
  rlen -= used;
}

static void hello(void)
{
  size_t id_len = strlen(opt_id), exec_len = strlen(opt_exec_id);
  if (id_len > 0xffff || 3 + id_len + exec_len > FRAME_MAX)
    fail("say hello to the sandbox process", ENAMETOOLONG);
  uint8_t b[3 + 0xffff];
  b[0] = terminal ? 1 : 0;
  put16(b + 1, (uint16_t)id_len);
  memcpy(b + 3, opt_id, id_len);
  memcpy(b + 3 + id_len, opt_exec_id, exec_len);
  send_frame(FR_HELLO, b, 3 + id_len + exec_len);
  uint32_t len = 0;
  int type = read_frame_blocking(&len);
  if (type < 0)
    fail("hear from the sandbox process", -type);
  if (type == FR_ERROR) {
    char msg[FRAME_MAX + 1];
    memcpy(msg, rbuf + FRAME_HDR, len);
    msg[len] = '\0';
    log_line("error", "the sandbox process refused", "error", msg, NULL);
    tell_creator(msg);
    exit(1);
  }
  if (type != FR_OK)
    fail("hear from the sandbox process", EPROTO);
  consume(len);
}

/*
 * A write to fd 1 or 2 failed. EPIPE: the reader went away (`exec ID yes |
 * head -1`), so the guest process gets the SIGPIPE it would have got from a
 * pipe of its own, once, as with runc (relay.ts onBrokenPipe); the rest of
 * that output is read and dropped.
 */
static void output_failed(int fd, int err)
{
  if (fd == out_fd)
    out_dead = 1;
  else
    err_dead = 1;
  if (err == EPIPE && !sigpipe_sent) {
    sigpipe_sent = 1;
    send_u32(FR_SIGNAL, SIGPIPE);
  }
  pend_fd = -1;
}

/* Handles the complete frames in rbuf until one leaves output pending. */
static void handle_frames(void)
{
  while (pend_fd < 0 && rlen >= FRAME_HDR) {
    uint32_t len = get32(rbuf + 1);
    if (len > FRAME_MAX)
      lost("a frame from the sandbox process is too long");
    if (rlen < FRAME_HDR + len)
      return;
    uint8_t type = rbuf[0];
    const uint8_t *p = rbuf + FRAME_HDR;
    if (type == FR_STDOUT || type == FR_STDERR) {
      int fd = type == FR_STDOUT ? out_fd : err_fd;
      int dead = type == FR_STDOUT ? out_dead : err_dead;
      if (fd >= 0 && !dead && len > 0) {
        /* Written from rbuf in place; consumed once written. */
        pend_fd = fd;
        pend_ptr = p;
        pend_len = len;
        return;
      }
    } else if (type == FR_EXIT && len == 8) {
      int code = (int)get32(p), sig = (int)get32(p + 4);
      char c[16], s[16];
      snprintf(c, sizeof(c), "%d", code);
      snprintf(s, sizeof(s), "%d", sig);
      log_line("info", "process exited", "#exitCode", c, "#signal", s, NULL);
      exit_like(code, sig);
    } else if (type == FR_LOST) {
      char why[FRAME_MAX + 1];
      memcpy(why, p, len);
      why[len] = '\0';
      log_line("error", "lost the process: its VM is gone", "reason", why, NULL);
      exit(LOST_EXIT);
    } else {
      lost("a frame from the sandbox process is not one a shim takes");
    }
    consume(len);
  }
}

static void write_pending(void)
{
  size_t chunk = pend_len < PIPE_BUF ? pend_len : PIPE_BUF;
  ssize_t n = write(pend_fd, pend_ptr, chunk);
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN)
      return;
    int e = errno;
    uint32_t len = get32(rbuf + 1);
    output_failed(pend_fd, e);
    consume(len);
    return;
  }
  pend_ptr += n;
  pend_len -= (size_t)n;
  if (pend_len == 0) {
    pend_fd = -1;
    consume(get32(rbuf + 1));
  }
}

static void on_signal(int sfd)
{
  struct signalfd_siginfo si;
  while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
    if (si.ssi_signo == SIGWINCH)
      send_resize();
    else
      send_u32(FR_SIGNAL, si.ssi_signo);
  }
}

static void parse_args(int argc, char **argv)
{
  static const struct option opts[] = {
    { "socket", required_argument, NULL, 's' },
    { "exec-id", required_argument, NULL, 'e' },
    { "console-socket", required_argument, NULL, 'c' },
    { "log", required_argument, NULL, 'l' },
    { "log-format", required_argument, NULL, 'f' },
    { 0 },
  };
  for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
    switch (c) {
    case 's': opt_socket = optarg; break;
    case 'e': opt_exec_id = optarg; break;
    case 'c': opt_console = optarg; break;
    case 'l': opt_log = optarg; break;
    case 'f': log_json = strcmp(optarg, "text") != 0; break;
    default: goto usage;
    }
  }
  if (opt_socket == NULL || optind != argc - 1)
    goto usage;
  opt_id = argv[optind];
  return;
usage:
  fprintf(stderr, "usage: kapsel-shim --socket PATH [--exec-id ID] [--console-socket PATH] "
      "[--log FILE] [--log-format json|text] -- CONTAINER-ID\n");
  tell_creator("kapsel-shim: bad arguments");
  exit(1);
}

/*
 * runc's --console-socket protocol: a fresh pty whose master goes to the
 * caller (SCM_RIGHTS, the pty's name as payload); we keep the slave, relay
 * it, and make it our controlling terminal (we are a session leader), so the
 * caller's resizes of the master arrive as SIGWINCH.
 */
static void attach_console(void)
{
  int master, slave;
  int r = kapsel_host_openpty(&master, &slave);
  if (r < 0)
    fail("open a pty", -r);
  char name[64];
  if (ttyname_r(slave, name, sizeof(name)) != 0)
    fail("name the pty", errno);
  char step[PATH_MAX + 64];
  snprintf(step, sizeof(step), "send the pty master to %s", opt_console);
  r = kapsel_host_send_fd(opt_console, master, name);
  close(master);
  if (r < 0)
    fail(step, -r);
  /* Failing this only loses resizes. */
  if (kapsel_host_set_ctty(slave) < 0)
    log_line("warning", "cannot make the pty our controlling terminal", NULL);
  terminal = 1;
  in_fd = out_fd = slave;
  err_fd = -1;
}

int main(int argc, char **argv)
{
  parse_args(argc, argv);
  if (opt_log != NULL) {
    log_file = fopen(opt_log, "ae");
  }
  signal(SIGPIPE, SIG_IGN);
  /* Blocked before anything else, so a signal sent early waits in the signalfd. */
  sigset_t set;
  sigemptyset(&set);
  for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
    sigaddset(&set, forwarded[i]);
  sigaddset(&set, SIGWINCH);
  if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
    fail("sigprocmask", errno);
  int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0)
    fail("signalfd", errno);
  if (opt_console != NULL)
    attach_console();
  connect_sandbox();
  hello();
  tell_creator("ok");
  {
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    log_line("info", "shim relaying", "#pid", pid, NULL);
  }
  if (terminal)
    send_resize();

  int stdin_open = 1;
  for (;;) {
    handle_frames();
    struct pollfd p[3];
    int np = 0;
    p[np++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
    /* While output is pending the socket is not read: backpressure to the guest. */
    int si = -1, ii = -1, oi = -1;
    if (pend_fd < 0) {
      si = np;
      p[np++] = (struct pollfd){ .fd = sock, .events = POLLIN };
    } else {
      oi = np;
      p[np++] = (struct pollfd){ .fd = pend_fd, .events = POLLOUT };
    }
    if (stdin_open) {
      ii = np;
      p[np++] = (struct pollfd){ .fd = in_fd, .events = POLLIN };
    }
    if (poll(p, (nfds_t)np, -1) < 0) {
      if (errno == EINTR)
        continue;
      lost("poll failed");
    }
    if (p[0].revents & POLLIN)
      on_signal(sfd);
    /* POLLERR too: a pipe whose reader left, which the write reports as EPIPE. */
    if (oi >= 0 && p[oi].revents)
      write_pending();
    if (ii >= 0 && p[ii].revents) {
      ssize_t n = (p[ii].revents & POLLNVAL) ? 0 : read(in_fd, inbuf, sizeof(inbuf));
      if (n > 0) {
        send_frame(FR_STDIN, inbuf, (size_t)n);
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        /* EOF, or a pty whose master is closed (EIO): close the process's stdin. */
        send_frame(FR_STDIN_EOF, NULL, 0);
        stdin_open = 0;
      }
    }
    if (si >= 0 && p[si].revents) {
      ssize_t n = read(sock, rbuf + rlen, sizeof(rbuf) - rlen);
      if (n < 0 && (errno == EINTR || errno == EAGAIN))
        continue;
      if (n <= 0)
        lost("the sandbox process closed the connection");
      rlen += (size_t)n;
    }
  }
}
