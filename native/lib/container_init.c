/* The container's init process between clone() and execve(): the job of
 * runc's `runc init` (standard_init_linux.go) in one async-signal-safe
 * function. It reports READY or an ERROR record to the monitor over the
 * sync socket, waits for START, then execs. The sync socket is O_CLOEXEC,
 * so the monitor reads EOF exactly when execve succeeded. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kapsel.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

__attribute__((noreturn)) static void report_and_exit(int sync, struct kapsel_record *rec,
                                                      int status) {
  send(sync, rec, sizeof *rec, MSG_NOSIGNAL);
  _exit(status);
}

/* Go's exec.LookPath findExecutable(): a non-directory the caller may
 * execute. */
static int find_executable(const char *file) {
  struct stat st;
  if (stat(file, &st) < 0)
    return -errno;
  if (S_ISDIR(st.st_mode))
    return -EISDIR;
  if (access(file, X_OK) < 0)
    return -errno;
  return 0;
}

/* exec.LookPath as runc calls it before signalling that it is ready, so a
 * missing binary fails `create` rather than `start`, with runc's text. */
static int look_path(const char *name, const char *path_env, char *out, size_t outlen,
                     struct kapsel_record *rec) {
  char scratch[32];
  int r;

  if (strchr(name, '/') != NULL) {
    r = find_executable(name);
    if (r == 0 && kapsel_strlcpy(out, name, outlen) < outlen)
      return 0;
    if (r == 0)
      r = -ENAMETOOLONG;
    kapsel_record_error(rec, -r, "exec", name);
    kapsel_strlcpy(rec->message, "exec: \"", sizeof rec->message);
    kapsel_strlcat(rec->message, name, sizeof rec->message);
    kapsel_strlcat(rec->message, "\": stat ", sizeof rec->message);
    kapsel_strlcat(rec->message, name, sizeof rec->message);
    kapsel_strlcat(rec->message, ": ", sizeof rec->message);
    kapsel_strlcat(rec->message, kapsel_strerror(-r, scratch, sizeof scratch),
                   sizeof rec->message);
    return r;
  }

  if (name[0] != '\0') {
    const char *dir = path_env;
    for (;;) {
      const char *end = strchrnul(dir, ':');
      size_t dlen = (size_t)(end - dir);
      /* An empty PATH element means the current directory. */
      if (dlen == 0) {
        dir = ".";
        dlen = 1;
      }
      if (dlen + 1 + strlen(name) < outlen) {
        memcpy(out, dir, dlen);
        out[dlen] = '/';
        kapsel_strlcpy(out + dlen + 1, name, outlen - dlen - 1);
        if (find_executable(out) == 0)
          return 0;
      }
      if (*end == '\0')
        break;
      dir = end + 1;
    }
  }
  kapsel_record_error(rec, ENOENT, "exec", name);
  kapsel_strlcpy(rec->message, "exec: \"", sizeof rec->message);
  kapsel_strlcat(rec->message, name, sizeof rec->message);
  kapsel_strlcat(rec->message, "\": executable file not found in $PATH", sizeof rec->message);
  return -ENOENT;
}

/* process.terminal: Node opened pty N in our devpts at READY (pty.c) and
 * chowned its slave to us. Open it by its name in our own /dev/pts, so
 * /proc/self/fd/0 and ttyname() name a node the container can see, then
 * make it stdio and our controlling terminal (we are a session leader, see
 * setsid above); runc's setupConsole + dupStdio. */
static int open_tty(int32_t index, struct kapsel_record *rec) {
  char path[32], digits[KAPSEL_UTOA_LEN];
  kapsel_strlcpy(path, "/dev/pts/", sizeof path);
  kapsel_strlcat(path, kapsel_utoa((unsigned)index, digits), sizeof path);
  memset(rec, 0, sizeof *rec);
  int tty = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (tty < 0) {
    kapsel_record_error(rec, errno, "open", path);
    return -1;
  }
  for (int fd = 0; fd < 3; fd++)
    if (dup2(tty, fd) < 0) {
      kapsel_record_error(rec, errno, "dup2", path);
      return -1;
    }
  close(tty);
  if (ioctl(0, TIOCSCTTY, 0) < 0) {
    kapsel_record_error(rec, errno, "ioctl", "TIOCSCTTY");
    return -1;
  }
  return 0;
}

#define CHECK(call, syscall_name, path)                                                         \
  do {                                                                                          \
    if ((call) < 0) {                                                                           \
      kapsel_record_error(&rec, errno, syscall_name, path);                                     \
      report_and_exit(sync, &rec, 1);                                                           \
    }                                                                                           \
  } while (0)

void kapsel_container_init(const struct kapsel_request *req, const struct kapsel_child_fds *fds) {
  static const char *const stdio_names[3] = {"stdin", "stdout", "stderr"};
  struct kapsel_record rec;
  char exe[PATH_MAX];
  int sync = fds->sync_child;

  memset(&rec, 0, sizeof rec);
  close(fds->control);
  close(fds->sync_mon);

  /* In a new user namespace nothing works until the monitor has written
   * our maps; then become its root, as runc's nsexec does. */
  if (req->new_ns & CLONE_NEWUSER) {
    ssize_t got;
    do
      got = recv(sync, &rec, sizeof rec, 0);
    while (got < 0 && errno == EINTR);
    if (got != (ssize_t)sizeof rec || rec.type != KAPSEL_MSG_MAP_IDS)
      _exit(1);
    memset(&rec, 0, sizeof rec);
    CHECK(syscall(SYS_setresgid, 0, 0, 0), "setresgid", "0");
    CHECK(syscall(SYS_setresuid, 0, 0, 0), "setresuid", "0");
  }

  if (fds->cgroup >= 0) {
    close(fds->cgroup);
    /* Born in its cgroup (see clone_init in monitor.c): now the cgroup
     * namespace roots there, before /sys/fs/cgroup can be mounted. */
    if (req->new_ns & CLONE_NEWCGROUP)
      CHECK(unshare(CLONE_NEWCGROUP), "unshare", "cgroup");
    /* An exec joins the container's cgroup namespace only now, for the
     * same reason (see kapsel_monitor). */
    for (size_t i = 0; i < req->njoin; i++)
      if (req->join[i].nstype == CLONE_NEWCGROUP)
        CHECK(setns(req->join[i].fd, CLONE_NEWCGROUP), "setns", req->join[i].path);
  }

  /* runc's nsexec makes the init a session leader (needed for a
   * controlling terminal, and so the agent's job control does not reach
   * it). */
  CHECK(setsid(), "setsid", NULL);

  /* A network namespace of its own (not one joined by path: that one's
   * owner set it up) starts with lo down; runc brings it up. */
  if ((req->new_ns & CLONE_NEWNET) && kapsel_loopback_up(&rec) < 0)
    report_and_exit(sync, &rec, 1);

  /* Still root and still seeing the agent's /proc: the limits that need
   * privilege (raising a hard limit, lowering oom_score_adj). In a new user
   * namespace the monitor has set them already (rlimits.c). */
  if (!(req->new_ns & CLONE_NEWUSER) &&
      (kapsel_apply_oom_score_adj(req, 0, &rec) < 0 || kapsel_apply_rlimits(req, 0, &rec) < 0))
    report_and_exit(sync, &rec, 1);

  if (req->rootfs != NULL && kapsel_prepare_rootfs(req, &rec) < 0)
    report_and_exit(sync, &rec, 1);

  if (req->hostname != NULL)
    CHECK(sethostname(req->hostname, strlen(req->hostname)), "sethostname", req->hostname);
  umask(req->umask);

  /* runc: without noNewPrivileges, loading a filter needs CAP_SYS_ADMIN,
   * so it goes in before the capabilities are dropped; with it, as late as
   * possible (below), so the filter sees fewer of our own calls. */
  int nnp = (req->flags & KAPSEL_FLAG_NO_NEW_PRIVS) != 0;
  if (!nnp && kapsel_seccomp_load(req, &rec) < 0)
    report_and_exit(sync, &rec, 1);

  /* runc finalizeNamespace(): bounding set, keep caps across setuid,
   * groups, then gid, then uid (after setuid we could no longer change the
   * others), then the other capability sets. Raw syscalls: we are a raw
   * clone() of the monitor, and glibc's wrappers would broadcast to "all
   * threads" (nptl setxid) from state that describes the monitor. One
   * process, and the kernel applies these per thread, which is all there
   * is. */
  if (kapsel_drop_bounding(req, &rec) < 0)
    report_and_exit(sync, &rec, 1);
  if (req->has_caps)
    CHECK(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "prctl", "PR_SET_KEEPCAPS");
  /* setgroups is refused in a user namespace whose setgroups file says
   * deny; with no additional gids there is nothing to set then. */
  if (req->ngroups > 0 || !(req->new_ns & CLONE_NEWUSER))
    CHECK(syscall(SYS_setgroups, req->ngroups, req->groups), "setgroups", NULL);
  CHECK(syscall(SYS_setgid, req->gid), "setgid", NULL);
  CHECK(syscall(SYS_setuid, req->uid), "setuid", NULL);
  if (req->has_caps) {
    CHECK(prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0), "prctl", "PR_SET_KEEPCAPS");
    if (kapsel_apply_caps(req, &rec) < 0)
      report_and_exit(sync, &rec, 1);
  }
  CHECK(chdir(req->cwd), "chdir", req->cwd);

  /* kapsel_spawn made sure all three are >= 3, so no dup2 clobbers
   * another; dup2 clears O_CLOEXEC on the copy. With a terminal the pipes
   * are placeholders until START brings the pty. */
  for (int i = 0; i < 3; i++) {
    CHECK(dup2(fds->stdio[i], i), "dup2", stdio_names[i]);
    close(fds->stdio[i]);
  }

  if (look_path(req->argv[0], req->path_env, exe, sizeof exe, &rec) < 0)
    report_and_exit(sync, &rec, 127);

  rec.type = KAPSEL_MSG_READY;
  if (send(sync, &rec, sizeof rec, MSG_NOSIGNAL) < 0)
    _exit(1);
  /* Blocks until the monitor forwards START; EOF means it gave up on us. */
  ssize_t n;
  do
    n = recv(sync, &rec, sizeof rec, 0);
  while (n < 0 && errno == EINTR);
  if (n != (ssize_t)sizeof rec || rec.type != KAPSEL_MSG_START)
    _exit(1);
  if (req->terminal && open_tty(rec.value, &rec) < 0)
    report_and_exit(sync, &rec, 1);

  /* The monitor's signal mask and dispositions are already the defaults;
   * make sure nothing blocked leaks into the container. */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);

  if (nnp) {
    CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl", "PR_SET_NO_NEW_PRIVS");
    if (kapsel_seccomp_load(req, &rec) < 0)
      report_and_exit(sync, &rec, 127);
  }

  /* Only 0, 1, 2 cross execve, as in runc (CloseExecFrom(3)): anything
   * Node opened without O_CLOEXEC gets it now. The sync socket already has
   * it; that is what tells the monitor the exec happened. */
  if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
    for (int fd = 3; fd < 1024; fd++)
      if (fd != sync)
        close(fd);
  }

  /* If the monitor dies the container is unmanaged: take it down too. Set
   * after setuid, which clears the death signal. */
  CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL), "prctl", "PR_SET_PDEATHSIG");
  struct pollfd pfd = {.fd = sync, .events = 0};
  if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR)))
    _exit(1); /* the monitor died before the death signal was armed */

  execve(exe, req->argv, req->envp);
  kapsel_record_error(&rec, errno, "exec", exe);
  report_and_exit(sync, &rec, 127);
}
