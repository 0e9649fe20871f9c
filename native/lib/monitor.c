/* The monitor: a single-threaded fork of Node that creates the container
 * init, relays its state to Node over the control socket, forwards START
 * and signals, and reaps it. It runs after fork() in a multi-threaded
 * process, so: syscalls only, no malloc, no stdio.
 *
 * Control socket, monitor -> Node: READY{pid} | ERROR{...}, then on START
 * STARTED | ERROR, then EXITED{wait status}; then the monitor exits, and
 * Node sees EOF and reaps it. Node -> monitor: START, SIGNAL{signo}; EOF
 * means the agent is gone, and the container is killed. */
#include <errno.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kapsel.h"

struct monitor {
  int control;
  int sync; /* -1 once the container init's end is closed */
  pid_t pid;
  int pidfd;
  int ready;
  int start_sent;
  int exec_failed;
};

static void send_record(const struct monitor *m, const struct kapsel_record *rec) {
  /* A failure means Node is gone; the control EOF path will clean up. */
  (void)kapsel_send_full(m->control, rec, sizeof *rec);
}

static void send_simple(const struct monitor *m, int type, int value) {
  struct kapsel_record rec;
  memset(&rec, 0, sizeof rec);
  rec.type = type;
  rec.value = value;
  send_record(m, &rec);
}

__attribute__((noreturn)) static void fail_early(int control, int err, const char *syscall,
                                                 const char *path) {
  struct kapsel_record rec;
  kapsel_record_error(&rec, err, syscall, path);
  (void)kapsel_send_full(control, &rec, sizeof rec);
  _exit(1);
}

/* One record, or EOF, from the container init. With block == 0 an empty
 * socket returns without doing anything. */
static void handle_sync(struct monitor *m, int block) {
  struct kapsel_record rec;
  ssize_t n;
  do
    n = recv(m->sync, &rec, sizeof rec, block ? 0 : MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !block)
    return;
  if (n != (ssize_t)sizeof rec) {
    /* EOF: the O_CLOEXEC end closed, so execve succeeded, unless the init
     * died first (then no START was sent, or it sent an exec ERROR). */
    close(m->sync);
    m->sync = -1;
    if (m->start_sent && !m->exec_failed)
      send_simple(m, KAPSEL_MSG_STARTED, m->pid);
    return;
  }
  if (rec.type == KAPSEL_MSG_READY) {
    m->ready = 1;
    send_simple(m, KAPSEL_MSG_READY, m->pid);
  } else if (rec.type == KAPSEL_MSG_ERROR) {
    if (m->start_sent)
      m->exec_failed = 1;
    rec.value = m->pid;
    send_record(m, &rec);
  }
}

__attribute__((noreturn)) static void finish(struct monitor *m) {
  int status = 0;
  while (waitpid(m->pid, &status, 0) < 0 && errno == EINTR)
    ;
  /* The init is gone, so nothing holds its end of the sync socket: drain
   * what it said before dying (an ERROR must precede EXITED). */
  while (m->sync >= 0)
    handle_sync(m, 1);
  send_simple(m, KAPSEL_MSG_EXITED, status);
  _exit(0);
}

static void handle_control(struct monitor *m) {
  struct kapsel_record rec;
  int r = kapsel_read_full(m->control, &rec, sizeof rec);
  if (r <= 0) {
    /* The agent died or dropped us: nobody could ever wait for this
     * container, so it goes too (SIGKILL reaches a pid-namespace init from
     * its parent namespace). */
    kill(m->pid, SIGKILL);
    finish(m);
  }
  if (rec.type == KAPSEL_MSG_START) {
    if (m->ready && !m->start_sent && m->sync >= 0) {
      int32_t pty = rec.value; /* with a terminal: the index of its pty */
      memset(&rec, 0, sizeof rec);
      rec.type = KAPSEL_MSG_START;
      rec.value = pty;
      if (send(m->sync, &rec, sizeof rec, MSG_NOSIGNAL) == (ssize_t)sizeof rec) {
        m->start_sent = 1;
        return;
      }
    }
    kapsel_record_error(&rec, EINVAL, "start", NULL);
    kapsel_strlcpy(rec.message, "start: container init is not waiting to start",
                   sizeof rec.message);
    rec.value = m->pid;
    send_record(m, &rec);
  } else if (rec.type == KAPSEL_MSG_SIGNAL) {
    /* Safe from pid reuse: it is our child and we have not reaped it (we
     * reap only in finish(), which never returns). */
    kill(m->pid, rec.value);
  }
}

/* Close every fd Node had (the agent's listening and virtio-serial fds,
 * libuv's internals) except 0-2 and ours: we live as long as the container
 * and should hold nothing of the agent's. */
static void close_other_fds(int *keep, size_t n) {
  for (size_t i = 1; i < n; i++) /* insertion sort: tiny, no libc */
    for (size_t j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
      int t = keep[j];
      keep[j] = keep[j - 1];
      keep[j - 1] = t;
    }
  unsigned lo = 3;
  for (size_t i = 0; i <= n; i++) {
    unsigned hi = i < n ? (unsigned)keep[i] : ~0U;
    if (i < n && keep[i] < (int)lo)
      continue;
    if (hi > lo && syscall(SYS_close_range, lo, hi - 1, 0) < 0) {
      for (unsigned fd = lo; fd < hi && fd < 4096; fd++)
        close((int)fd);
    }
    if (i < n)
      lo = (unsigned)keep[i] + 1;
  }
}

/* A raw clone with no stack behaves like fork() but takes namespace flags
 * (crun's syscall_clone()). With a cgroup, clone3(CLONE_INTO_CGROUP) (Linux
 * >= 5.7) makes the init be born in it, so not one page of its setup is
 * charged elsewhere. The cgroup namespace is then unshared by the init
 * itself: clone would create it before the cgroup move (copy_namespaces()
 * runs before cgroup_can_fork()), rooting it at the monitor's cgroup; this
 * is why runc, too, unshares it only after the init joined its cgroup. */
static pid_t clone_init(const struct kapsel_request *req, const struct kapsel_child_fds *fds) {
  if (fds->cgroup < 0)
    return (pid_t)syscall(SYS_clone, (unsigned long)(SIGCHLD | req->new_ns), NULL, NULL, NULL,
                          NULL);
  struct clone_args args;
  memset(&args, 0, sizeof args);
  args.flags = (req->new_ns & ~(uint64_t)CLONE_NEWCGROUP) | CLONE_INTO_CGROUP;
  args.exit_signal = SIGCHLD;
  args.cgroup = (uint64_t)fds->cgroup;
  return (pid_t)syscall(SYS_clone3, &args, sizeof args);
}

void kapsel_monitor(const struct kapsel_request *req, const struct kapsel_child_fds *fds,
                    pid_t node_pid) {
  struct monitor m = {.control = fds->control, .sync = fds->sync_mon, .pidfd = -1};

  /* Die with the agent. PDEATHSIG follows the thread that forked us: the
   * Node main thread, which lives as long as the process (so kapsel_spawn
   * must not be called through koffi's async worker threads). */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != node_pid)
    _exit(1);

  /* Node and libuv handlers write into libuv's signal pipe, which we share
   * with the agent: a signal to the monitor must not look like one to Node.
   * sigaction refuses glibc's reserved signals; that is fine. */
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++)
    sigaction(sig, &dfl, NULL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);

  int keep[8 + KAPSEL_MAX_JOIN];
  size_t nkeep = 0;
  keep[nkeep++] = fds->control;
  keep[nkeep++] = fds->sync_mon;
  keep[nkeep++] = fds->sync_child;
  for (int i = 0; i < 3; i++)
    keep[nkeep++] = fds->stdio[i];
  if (fds->cgroup >= 0)
    keep[nkeep++] = fds->cgroup;
  for (size_t i = 0; i < req->njoin; i++)
    keep[nkeep++] = req->join[i].fd;
  close_other_fds(keep, nkeep);

  /* Join existing namespaces first (exec, or a shared netns), then clone
   * into the new ones. setns(CLONE_NEWPID) affects our children only, and
   * setns into a mount namespace needs a single-threaded caller: us. */
  for (size_t i = 0; i < req->njoin; i++) {
    /* Born in a cgroup, the child joins the cgroup namespace itself, after
     * clone3: the kernel refuses CLONE_INTO_CGROUP (ENOENT, in
     * cgroup_procs_write_permission) when the caller's own cgroup lies
     * outside the cgroup namespace it is in. */
    if (fds->cgroup >= 0 && req->join[i].nstype == CLONE_NEWCGROUP)
      continue;
    if (setns(req->join[i].fd, req->join[i].nstype) < 0)
      fail_early(m.control, errno, "setns", req->join[i].path);
    close(req->join[i].fd);
  }

  m.pid = clone_init(req, fds);
  if (m.pid == 0)
    kapsel_container_init(req, fds);
  if (m.pid < 0)
    fail_early(m.control, errno, "clone", NULL);

  /* Only the container may hold its stdio ends, or Node never sees EOF. */
  close(fds->sync_child);
  if (fds->cgroup >= 0) {
    close(fds->cgroup);
    for (size_t i = 0; i < req->njoin; i++)
      if (req->join[i].nstype == CLONE_NEWCGROUP)
        close(req->join[i].fd);
  }
  for (int i = 0; i < 3; i++)
    close(fds->stdio[i]);

  /* A new user namespace: its maps, then the go-ahead the init waits for. */
  if (req->new_ns & CLONE_NEWUSER) {
    struct kapsel_record rec;
    if (kapsel_write_id_maps(req, m.pid, &rec) < 0 ||
        kapsel_apply_oom_score_adj(req, m.pid, &rec) < 0 ||
        kapsel_apply_rlimits(req, m.pid, &rec) < 0) {
      kill(m.pid, SIGKILL);
      send_record(&m, &rec);
      finish(&m);
    }
    memset(&rec, 0, sizeof rec);
    rec.type = KAPSEL_MSG_MAP_IDS;
    (void)send(m.sync, &rec, sizeof rec, MSG_NOSIGNAL);
  }

  /* A pidfd turns "the child exited" into a pollable event, no SIGCHLD
   * handler needed (Linux >= 5.3). */
  m.pidfd = (int)syscall(SYS_pidfd_open, m.pid, 0);
  if (m.pidfd < 0) {
    int e = errno;
    kill(m.pid, SIGKILL);
    struct kapsel_record rec;
    kapsel_record_error(&rec, e, "pidfd_open", NULL);
    send_record(&m, &rec);
    finish(&m);
  }

  for (;;) {
    struct pollfd p[3] = {
        {.fd = m.control, .events = POLLIN},
        {.fd = m.sync, .events = POLLIN},
        {.fd = m.pidfd, .events = POLLIN},
    };
    if (poll(p, 3, -1) < 0) {
      if (errno == EINTR)
        continue;
      kill(m.pid, SIGKILL);
      finish(&m);
    }
    if (p[1].revents)
      handle_sync(&m, 0);
    if (p[0].revents)
      handle_control(&m);
    if (p[2].revents)
      finish(&m);
  }
}
