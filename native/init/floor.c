/*
 * kapsel-floor-init: the floor of the boot benchmark.
 *
 * Does the least a guest must do before the host can talk to it: mount
 * /proc /sys /dev, load the virtio modules, open the agent's virtio-serial
 * port. The host sees the open as QMP VSERPORT_CHANGE, the same signal the
 * real agent gives, so (real boot - floor boot) is what our init and the
 * Node.js agent cost on top of the kernel.
 */
#include "init.h"

#include <dirent.h>

#define PORT_NAME "agent.channel.0"
#define MODULE_LIST "/lib/modules/load.list"
#define PORT_WAIT_MS 60000

/* Looks for the vport whose sysfs name is PORT_NAME; fills dev with
 * /dev/vportNpM. Returns 0 when found, -ENOENT when not (yet). */
static int find_port(char *dev, size_t size)
{
  DIR *d = opendir("/sys/class/virtio-ports");
  if (!d)
    return -errno;
  int ret = -ENOENT;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    char path[512], name[128];
    snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      continue;
    ssize_t n = read(fd, name, sizeof(name) - 1);
    close(fd);
    if (n <= 0)
      continue;
    name[n] = '\0';
    if (name[n - 1] == '\n')
      name[n - 1] = '\0';
    if (strcmp(name, PORT_NAME) == 0) {
      snprintf(dev, size, "/dev/%s", e->d_name);
      ret = 0;
      break;
    }
  }
  closedir(d);
  return ret;
}

/* `kapsel.floor=stay` on the kernel command line: idle instead of powering off. */
static int stay_up(void)
{
  char buf[2048];
  int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  return strstr(buf, "kapsel.floor=stay") != NULL;
}

static int run(void)
{
  int ret;
  if ((ret = mount_fs("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)) < 0 ||
      (ret = mount_fs("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)) < 0 ||
      (ret = mount_fs("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755")) < 0)
    return ret;
  ensure_console();
  if ((ret = load_modules(MODULE_LIST, NULL, NULL)) < 0)
    return ret;

  /* The sysfs entry and the devtmpfs node appear a little after the
   * driver binds; poll rather than depend on uevent plumbing. */
  char dev[300];
  int fd = -1;
  for (int waited = 0;; waited += 5) {
    if (find_port(dev, sizeof(dev)) == 0) {
      fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC);
      if (fd >= 0)
        break;
      if (errno != ENOENT)
        return log_err(errno, "open `%s`", dev);
    }
    if (waited >= PORT_WAIT_MS)
      return log_err(ENODEV, "virtio-serial port `%s` did not appear", PORT_NAME);
    sleep_ms(5);
  }

  /* Non-blocking: a virtio-serial write blocks while no host side is
   * connected, and the open alone is the signal that matters. */
  if (write(fd, "ready\n", 6) < 0)
    log_err(errno, "write `%s` (is the host side connected?)", dev);
  log_msg("ready on %s", dev);
  sleep_ms(200);
  close(fd);
  if (stay_up()) {
    /* bench/pods.ts measures an idle VM's host memory against this one. */
    log_msg("staying up (kapsel.floor=stay)");
    for (;;)
      pause();
  }
  return 0;
}

int main(void)
{
  log_prefix = "kapsel-floor";
  ensure_console();
  if (getpid() != 1) {
    log_msg("must run as PID 1, not as pid %d", getpid());
    return 1;
  }
  log_msg("started");
  if (run() < 0)
    log_msg("failed");
  power_off();
}
