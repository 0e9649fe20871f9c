/*
 * kapsel-init: PID 1 of the guest VM.
 *
 * Sets up the few kernel filesystems the agent and the container engine
 * need, loads the modules listed by rootfs/build.sh, starts the Node.js agent
 * and then only reaps children. When the agent dies the VM has no purpose
 * left: say why on the console, sync, power off. Every failure ends in a
 * power-off as well (QEMU runs with -no-reboot, so the VM goes away instead
 * of looping through kernel panics).
 *
 * Options come from the kernel command line as `kapsel.<key>=<value>`; each
 * is handed to the agent as KAPSEL_<KEY> (kapsel.log=debug -> KAPSEL_LOG).
 * The kernel does not pass dotted parameters to init itself (it takes them
 * for module parameters), so we read /proc/cmdline.
 */
#include "init.h"
#include "agent-flags.h"

#include <ctype.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

#define AGENT_NODE "/usr/bin/node"
#define AGENT_SCRIPT "/opt/kapsel/agent.mjs"
/* The boot loader that runs the agent's CommonJS bundle with the V8 code
 * cache made with the image (agent/src/boot/code-cache.ts); an image
 * without it (an older build, a bench image) runs AGENT_SCRIPT. */
#define AGENT_BOOT "/opt/kapsel/agent-boot.cjs"
#define MODULE_LIST "/lib/modules/load.list"
#define HOSTNAME "kapsel"
#define CGROUP_ROOT "/sys/fs/cgroup"

#define MAX_OPTS 32
#define OPT_LEN 256

/* KAPSEL_* environment built from the command line. */
static char opt_env[MAX_OPTS][OPT_LEN];
static int opt_count;
static int debug_shell;
/* kapsel.image=DEV: the read-only guest image to mount (rootfs/build.sh's
 * image.erofs, mapped by QEMU as virtio-pmem); empty with a full initrd. */
static char image_dev[OPT_LEN];

#define IMAGE_DIR "/.kapsel-image"
#define IMAGE_WAIT_MS 10000

static const char *const base_env[] = {
  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  "HOME=/root",
  "KAPSEL_NATIVE_LIB=/opt/kapsel/lib/libkapsel.so",
  "NODE_PATH=/opt/kapsel/node_modules",
};

static double uptime_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int read_file(const char *path, char *buf, size_t size)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return log_err(errno, "open `%s`", path);
  size_t len = 0;
  while (len < size - 1) {
    ssize_t n = read(fd, buf + len, size - 1 - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int saved = errno;
      close(fd);
      return log_err(saved, "read `%s`", path);
    }
    if (n == 0)
      break;
    len += (size_t)n;
  }
  close(fd);
  buf[len] = '\0';
  return (int)len;
}

static int write_file(const char *path, const char *data)
{
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return log_err(errno, "open `%s`", path);
  ssize_t n = write(fd, data, strlen(data));
  int saved = errno;
  close(fd);
  if (n < 0)
    return log_err(saved, "write `%s` to `%s`", data, path);
  return 0;
}

static int mount_all(void)
{
  static const struct {
    const char *source, *target, *fstype;
    unsigned long flags;
    const char *data;
  } mounts[] = {
    { "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
    { "sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
    { "devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755" },
    { "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "mode=0620,ptmxmode=0666" },
    { "shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" },
    { "tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755" },
    /* nsdelegate: a cgroup namespace is a delegation boundary, as systemd
     * mounts it; the agent gives each container its own cgroup namespace. */
    { "cgroup2", CGROUP_ROOT, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, "nsdelegate" },
  };
  for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++) {
    int ret = mount_fs(mounts[i].source, mounts[i].target, mounts[i].fstype, mounts[i].flags,
                       mounts[i].data);
    if (ret < 0)
      return ret;
    if (strcmp(mounts[i].target, "/dev") == 0)
      ensure_console();
  }

  /* What udev/systemd would add; some programs expect /dev/fd. */
  static const char *const links[][2] = {
    { "/proc/self/fd", "/dev/fd" },
    { "/proc/self/fd/0", "/dev/stdin" },
    { "/proc/self/fd/1", "/dev/stdout" },
    { "/proc/self/fd/2", "/dev/stderr" },
  };
  for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
    if (symlink(links[i][0], links[i][1]) < 0 && errno != EEXIST)
      return log_err(errno, "symlink `%s`", links[i][1]);
  return 0;
}

/* Enables in the root every controller the kernel offers, so the agent can
 * create per-container cgroups with memory, cpu, pids, io and cpuset. One
 * write per controller, so that an error names the controller. */
static int enable_controllers(void)
{
  char buf[512];
  int ret = read_file(CGROUP_ROOT "/cgroup.controllers", buf, sizeof(buf));
  if (ret < 0)
    return ret;
  char *save = NULL;
  for (char *c = strtok_r(buf, " \n", &save); c; c = strtok_r(NULL, " \n", &save)) {
    char req[64];
    snprintf(req, sizeof(req), "+%s", c);
    ret = write_file(CGROUP_ROOT "/cgroup.subtree_control", req);
    if (ret < 0)
      return ret;
  }
  return 0;
}

/* Splits like the kernel's next_arg(): spaces separate, double quotes group
 * ("kapsel.x=\"a b\""), and the quotes are dropped. */
static int parse_cmdline(void)
{
  char buf[4096];
  int ret = read_file("/proc/cmdline", buf, sizeof(buf));
  if (ret < 0)
    return ret;

  char *p = buf;
  while (*p) {
    while (isspace((unsigned char)*p))
      p++;
    if (!*p)
      break;
    char word[OPT_LEN];
    size_t n = 0;
    int quoted = 0;
    for (; *p && (quoted || !isspace((unsigned char)*p)); p++) {
      if (*p == '"') {
        quoted = !quoted;
        continue;
      }
      if (n < sizeof(word) - 1)
        word[n++] = *p;
    }
    word[n] = '\0';

    if (strncmp(word, "kapsel.", 7) != 0)
      continue;
    char *key = word + 7;
    char *eq = strchr(key, '=');
    const char *value = "1"; /* a bare flag: kapsel.debug_shell */
    if (eq) {
      *eq = '\0';
      value = eq + 1;
    }
    if (*key == '\0')
      continue;

    if (strcmp(key, "debug_shell") == 0)
      debug_shell = strcmp(value, "1") == 0 || strcmp(value, "true") == 0 ||
                    strcmp(value, "yes") == 0 || strcmp(value, "on") == 0;
    if (strcmp(key, "image") == 0)
      snprintf(image_dev, sizeof(image_dev), "%s", value);
    if (strcmp(key, "log") == 0)
      log_verbose = strcmp(value, "debug") == 0 || strcmp(value, "trace") == 0;

    if (opt_count == MAX_OPTS) {
      log_msg("ignoring kernel option kapsel.%s: more than %d options", key, MAX_OPTS);
      continue;
    }
    char *env = opt_env[opt_count];
    size_t off = (size_t)snprintf(env, OPT_LEN, "KAPSEL_");
    for (const char *k = key; *k && off < OPT_LEN - 2; k++)
      env[off++] = (*k == '.' || *k == '-') ? '_' : (char)toupper((unsigned char)*k);
    env[off] = '\0';
    if (strlen(env) + 1 + strlen(value) >= OPT_LEN) {
      log_msg("ignoring kernel option kapsel.%s: value too long", key);
      continue;
    }
    strcat(env, "=");
    strcat(env, value);
    opt_count++;
  }
  return 0;
}

/* The kernel unpacks the initrd into "rootfs", the one mount without a
 * parent, and pivot_root(2) refuses to move a process off it (EINVAL).
 * Containers need pivot_root, not chroot, so PID 1 first puts a bind mount of
 * the initramfs over "/" and enters it, the way switch_root enters a real
 * root: from then on "/" is a mount with a parent and can be pivoted away
 * from in a container's mount namespace. */
static int leave_initramfs(void)
{
  static const char dir[] = "/.kapsel-root";
  if (mkdir(dir, 0700) < 0 && errno != EEXIST)
    return log_err(errno, "mkdir `%s`", dir);
  if (mount("/", dir, NULL, MS_BIND, NULL) < 0)
    return log_err(errno, "bind mount `/` to `%s`", dir);
  if (chdir(dir) < 0)
    return log_err(errno, "chdir `%s`", dir);
  if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
    return log_err(errno, "move `%s` to `/`", dir);
  if (chroot(".") < 0)
    return log_err(errno, "chroot `%s`", dir);
  if (chdir("/") < 0)
    return log_err(errno, "chdir `/`");
  /* The same directory, seen from the new root; no longer a mount point. */
  rmdir(dir);
  return 0;
}

/* Mounts the guest image read-only on IMAGE_DIR, where the initrd's /usr,
 * /bin, /opt... symlinks point. With DAX the guest maps the image's pages
 * (the host's page cache of image.erofs, shared by every VM) instead of
 * copying them into its own page cache; without DAX (a kernel or device that
 * refuses it) it still works, only unshared. The block device appears a
 * little after nd_pmem binds: poll for it. */
static int mount_image(void)
{
  struct stat st;
  int waited = 0;
  while (stat(image_dev, &st) < 0) {
    if (errno != ENOENT)
      return log_err(errno, "stat `%s`", image_dev);
    if (waited >= IMAGE_WAIT_MS)
      return log_err(ENODEV, "guest image device `%s` did not appear", image_dev);
    sleep_ms(5);
    waited += 5;
  }
  const char *how = "dax";
  if (mount(image_dev, IMAGE_DIR, "erofs", MS_RDONLY | MS_NODEV, "dax=always") < 0) {
    log_err(errno, "mount `%s` with dax (mounting without)", image_dev);
    how = "no dax";
    if (mount(image_dev, IMAGE_DIR, "erofs", MS_RDONLY | MS_NODEV, NULL) < 0)
      return log_err(errno, "mount `%s` on `%s`", image_dev, IMAGE_DIR);
  }
  log_msg("mounted the guest image %s on %s, %s (%.2f s after boot)", image_dev, IMAGE_DIR, how,
          uptime_s());
  return 0;
}

static int setup(void)
{
  int ret = leave_initramfs();
  if (ret < 0)
    return ret;
  ret = mount_all();
  if (ret < 0)
    return ret;
  ret = parse_cmdline();
  if (ret < 0)
    return ret;
  int loaded = 0;
  long long removed = 0;
  ret = load_modules(MODULE_LIST, &loaded, &removed);
  if (ret < 0)
    return ret;
  log_msg("loaded %d kernel modules (%.2f s after boot), removed their files (%lld KiB)", loaded,
          uptime_s(), removed / 1024);
  if (image_dev[0] != '\0' && (ret = mount_image()) < 0)
    return ret;
  if (sethostname(HOSTNAME, strlen(HOSTNAME)) < 0)
    return log_err(errno, "sethostname `%s`", HOSTNAME);
  return enable_controllers();
}

/* In the child between fork and exec: undo what PID 1 set for itself. */
static void child_reset(void)
{
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

#define MAX_EXTRA_FLAGS 8

/* kapsel.agent_flags=A,B (no spaces on a kernel command line): node flags
 * added after AGENT_NODE_FLAGS, for trying flags without a rebuild
 * (bench/agent-start.ts). V8 refuses the image's code cache under flags it
 * was not made with, so the agent then compiles from source. */
static int extra_node_flags(const char **out)
{
  static char buf[OPT_LEN];
  static const char key[] = "KAPSEL_AGENT_FLAGS=";
  int n = 0;
  for (int i = 0; i < opt_count; i++) {
    if (strncmp(opt_env[i], key, sizeof(key) - 1) != 0)
      continue;
    snprintf(buf, sizeof(buf), "%s", opt_env[i] + sizeof(key) - 1);
    for (char *save = NULL, *f = strtok_r(buf, ",", &save); f != NULL && n < MAX_EXTRA_FLAGS;
         f = strtok_r(NULL, ",", &save))
      out[n++] = f;
  }
  return n;
}

static pid_t start_agent(void)
{
  const char *script = access(AGENT_BOOT, R_OK) == 0 ? AGENT_BOOT : AGENT_SCRIPT;
  const char *fixed[] = { AGENT_NODE, AGENT_NODE_FLAGS };
  const char *argv[sizeof(fixed) / sizeof(fixed[0]) + MAX_EXTRA_FLAGS + 2];
  int argc = 0;
  for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
    argv[argc++] = fixed[i];
  argc += extra_node_flags(argv + argc);
  argv[argc++] = script;
  argv[argc] = NULL;
  const char *envp[sizeof(base_env) / sizeof(base_env[0]) + MAX_OPTS + 1];
  size_t n = 0;
  for (size_t i = 0; i < sizeof(base_env) / sizeof(base_env[0]); i++)
    envp[n++] = base_env[i];
  for (int i = 0; i < opt_count; i++)
    envp[n++] = opt_env[i];
  envp[n] = NULL;

  pid_t pid = fork();
  if (pid < 0)
    return log_err(errno, "fork agent");
  if (pid == 0) {
    child_reset();
    /* Its own session: a signal meant for the agent's process group never
     * reaches PID 1's, and the console is not its controlling terminal. */
    setsid();
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0)
      dup2(null, STDIN_FILENO);
    execve(AGENT_NODE, (char *const *)argv, (char *const *)envp);
    log_err(errno, "execve `%s`", AGENT_NODE);
    _exit(127);
  }
  log_msg("started agent %s %s (pid %d, %.2f s after boot)", AGENT_NODE, script, pid,
          uptime_s());
  return pid;
}

static pid_t start_debug_shell(void)
{
  const char *argv[] = { "-sh", NULL };
  const char *envp[] = { base_env[0], base_env[1], "TERM=linux", NULL };
  pid_t pid = fork();
  if (pid < 0)
    return log_err(errno, "fork debug shell");
  if (pid == 0) {
    child_reset();
    setsid();
    int fd = open("/dev/console", O_RDWR);
    if (fd >= 0) {
      ioctl(fd, TIOCSCTTY, 1);
      dup2(fd, 0);
      dup2(fd, 1);
      dup2(fd, 2);
      if (fd > 2)
        close(fd);
    }
    execve("/bin/sh", (char *const *)argv, (char *const *)envp);
    log_err(errno, "execve `/bin/sh`");
    _exit(127);
  }
  log_msg("debug shell on the console (pid %d)", pid);
  return pid;
}

/* SIGTERM everything left, give it a moment, then SIGKILL; reap all. */
static void stop_everything(void)
{
  if (kill(-1, SIGTERM) < 0)
    return; /* ESRCH: nothing left */
  for (int i = 0; i < 50; i++) {
    while (waitpid(-1, NULL, WNOHANG) > 0)
      ;
    if (kill(-1, 0) < 0 && errno == ESRCH)
      return;
    sleep_ms(10);
  }
  kill(-1, SIGKILL);
  while (waitpid(-1, NULL, WNOHANG) > 0)
    ;
}

__attribute__((noreturn)) static void shutdown_vm(void)
{
  log_msg("powering off");
  stop_everything();
  power_off();
}

static void describe_exit(const char *who, int status)
{
  if (WIFEXITED(status))
    log_msg("%s exited with status %d", who, WEXITSTATUS(status));
  else if (WIFSIGNALED(status))
    log_msg("%s killed by signal %d (%s)%s", who, WTERMSIG(status), strsignal(WTERMSIG(status)),
            WCOREDUMP(status) ? ", core dumped" : "");
  else
    log_msg("%s ended with wait status 0x%x", who, status);
}

int main(void)
{
  log_prefix = "kapsel-init";
  ensure_console();
  if (getpid() != 1) {
    log_msg("must run as PID 1 (the guest's init), not as pid %d", getpid());
    return 1;
  }
  log_msg("started");
  /* The kernel runs `quiet`: this is the one figure of its own boot the
   * host's boot timeline gets (runtime/src/sandbox/vm/timeline.ts). */
  log_msg("kernel booted in %.2f s", uptime_s());

  /* PID 1 gets no default signal actions; take the ones we act on
   * synchronously. Ctrl-Alt-Del then arrives as SIGINT, not as a reboot. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGPWR);
  sigprocmask(SIG_BLOCK, &set, NULL);
  reboot(RB_DISABLE_CAD);

  if (setup() < 0) {
    log_msg("setup failed");
    shutdown_vm();
  }

  pid_t shell = debug_shell ? start_debug_shell() : 0;
  if (shell < 0)
    shell = 0;
  pid_t agent = start_agent();
  if (agent < 0)
    shutdown_vm();

  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&set, &si);
    if (sig < 0) {
      if (errno == EINTR)
        continue;
      log_err(errno, "sigwaitinfo");
      shutdown_vm();
    }
    if (sig != SIGCHLD) {
      log_msg("received signal %d (%s) from pid %d", sig, strsignal(sig), (int)si.si_pid);
      shutdown_vm();
    }
    /* One SIGCHLD may stand for many exits: reap until none is left.
     * Orphans re-parented to us are reaped here as well. */
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      if (pid == agent) {
        describe_exit("agent", status);
        agent = 0;
      } else if (pid == shell) {
        describe_exit("debug shell", status);
        shell = 0;
      }
    }
    /* With a debug shell, stay up after the agent died so it can be
     * inspected; power off when the shell exits too. */
    if (agent == 0 && shell == 0)
      shutdown_vm();
  }
}
