/* kapsel-checker: what a container sees, printed from inside it (the
 * static test binary youki and crun put in their test images). Dispatches
 * on argv[1]; every line is "key value" so tests can parse it.
 *
 *   ns                 inode of each namespace in /proc/self/ns ("ns mnt 4026531840")
 *   mounts             /proc/self/mountinfo
 *   caps               CapInh/CapPrm/CapEff/CapBnd/CapAmb from /proc/self/status
 *   status KEY         one field of /proc/self/status (Seccomp, NoNewPrivs, ...)
 *   rlimits            every rlimit: "rlimit NOFILE soft hard"
 *   id                 uid, gid, groups
 *   umask, hostname, oom (oom_score_adj), uidmap, gidmap
 *   sysctl KEY         /proc/sys/KEY (dots or slashes)
 *   access PATH...     "access PATH r=0|1 w=0|1"
 *   read PATH          the file's content
 *   stat PATH...       "stat PATH type major minor mode uid gid" (no such: "stat PATH none")
 *   fdstat FD          the same for an open fd ("fdstat 0 c 136 3 0620 7 8")
 *   mkdir PATH         "mkdir PATH ok" or "mkdir PATH errno NAME"
 *   tty                whether 0 is a terminal, its window size and pgrp
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

static void cat(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    printf("error %s %s\n", path, strerror(errno));
    return;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    fwrite(buf, 1, n, stdout);
  fclose(f);
}

static void status_fields(const char *const *keys, size_t n) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[512];
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    for (size_t i = 0; i < n; i++) {
      size_t kl = strlen(keys[i]);
      if (strncmp(line, keys[i], kl) == 0 && line[kl] == ':') {
        char *v = line + kl + 1;
        while (*v == ' ' || *v == '\t')
          v++;
        printf("%s %s", keys[i], v);
      }
    }
  }
  if (f != NULL)
    fclose(f);
}

static const struct {
  const char *name;
  int resource;
} rlimits[] = {
    {"CPU", RLIMIT_CPU},         {"FSIZE", RLIMIT_FSIZE},     {"DATA", RLIMIT_DATA},
    {"STACK", RLIMIT_STACK},     {"CORE", RLIMIT_CORE},       {"RSS", RLIMIT_RSS},
    {"NPROC", RLIMIT_NPROC},     {"NOFILE", RLIMIT_NOFILE},   {"MEMLOCK", RLIMIT_MEMLOCK},
    {"AS", RLIMIT_AS},           {"LOCKS", RLIMIT_LOCKS},     {"SIGPENDING", RLIMIT_SIGPENDING},
    {"MSGQUEUE", RLIMIT_MSGQUEUE}, {"NICE", RLIMIT_NICE},     {"RTPRIO", RLIMIT_RTPRIO},
    {"RTTIME", RLIMIT_RTTIME},
};

static void print_limit(rlim_t v) {
  if (v == RLIM_INFINITY)
    printf(" unlimited");
  else
    printf(" %llu", (unsigned long long)v);
}

int main(int argc, char **argv) {
  const char *cmd = argc > 1 ? argv[1] : "";
  if (strcmp(cmd, "ns") == 0) {
    static const char *const kinds[] = {"cgroup", "ipc", "mnt", "net", "pid", "user", "uts"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
      char path[64];
      struct stat st;
      snprintf(path, sizeof path, "/proc/self/ns/%s", kinds[i]);
      if (stat(path, &st) == 0)
        printf("ns %s %llu\n", kinds[i], (unsigned long long)st.st_ino);
    }
  } else if (strcmp(cmd, "mounts") == 0) {
    cat("/proc/self/mountinfo");
  } else if (strcmp(cmd, "caps") == 0) {
    static const char *const keys[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
    status_fields(keys, 5);
  } else if (strcmp(cmd, "status") == 0 && argc > 2) {
    status_fields((const char *const *)argv + 2, (size_t)argc - 2);
  } else if (strcmp(cmd, "rlimits") == 0) {
    for (size_t i = 0; i < sizeof rlimits / sizeof rlimits[0]; i++) {
      struct rlimit rl;
      if (getrlimit(rlimits[i].resource, &rl) < 0)
        continue;
      printf("rlimit %s", rlimits[i].name);
      print_limit(rl.rlim_cur);
      print_limit(rl.rlim_max);
      printf("\n");
    }
  } else if (strcmp(cmd, "id") == 0) {
    gid_t groups[256];
    int n = getgroups(256, groups);
    printf("uid %u\ngid %u\ngroups", (unsigned)getuid(), (unsigned)getgid());
    for (int i = 0; i < n; i++)
      printf(" %u", (unsigned)groups[i]);
    printf("\n");
  } else if (strcmp(cmd, "umask") == 0) {
    mode_t m = umask(0);
    printf("umask %04o\n", (unsigned)m);
  } else if (strcmp(cmd, "hostname") == 0) {
    char h[256] = {0};
    gethostname(h, sizeof h - 1);
    printf("hostname %s\n", h);
  } else if (strcmp(cmd, "oom") == 0) {
    printf("oom ");
    cat("/proc/self/oom_score_adj");
  } else if (strcmp(cmd, "uidmap") == 0) {
    cat("/proc/self/uid_map");
  } else if (strcmp(cmd, "gidmap") == 0) {
    cat("/proc/self/gid_map");
  } else if (strcmp(cmd, "sysctl") == 0 && argc > 2) {
    char path[512];
    snprintf(path, sizeof path, "/proc/sys/%s", argv[2]);
    for (char *p = path + 10; *p; p++)
      if (*p == '.')
        *p = '/';
    printf("sysctl %s ", argv[2]);
    cat(path);
  } else if (strcmp(cmd, "access") == 0) {
    for (int i = 2; i < argc; i++)
      printf("access %s r=%d w=%d\n", argv[i], access(argv[i], R_OK) == 0,
             access(argv[i], W_OK) == 0);
  } else if (strcmp(cmd, "read") == 0 && argc > 2) {
    cat(argv[2]);
  } else if (strcmp(cmd, "stat") == 0 || strcmp(cmd, "fdstat") == 0) {
    int fd = strcmp(cmd, "fdstat") == 0;
    for (int i = 2; i < argc; i++) {
      struct stat st;
      if ((fd ? fstat(atoi(argv[i]), &st) : lstat(argv[i], &st)) < 0) {
        printf("%s %s none\n", cmd, argv[i]);
        continue;
      }
      const char *t = S_ISCHR(st.st_mode)   ? "c"
                      : S_ISBLK(st.st_mode) ? "b"
                      : S_ISFIFO(st.st_mode) ? "p"
                      : S_ISDIR(st.st_mode) ? "d"
                      : S_ISLNK(st.st_mode) ? "l"
                                            : "f";
      printf("%s %s %s %u %u %04o %u %u\n", cmd, argv[i], t, major(st.st_rdev), minor(st.st_rdev),
             (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)st.st_gid);
    }
  } else if (strcmp(cmd, "mkdir") == 0 && argc > 2) {
    if (mkdir(argv[2], 0755) == 0)
      printf("mkdir %s ok\n", argv[2]);
    else
      printf("mkdir %s errno %d\n", argv[2], errno);
  } else if (strcmp(cmd, "tty") == 0) {
    struct winsize ws = {0};
    int is = isatty(0);
    ioctl(0, TIOCGWINSZ, &ws);
    printf("tty %d rows %u cols %u\n", is, ws.ws_row, ws.ws_col);
    printf("sid %d pgrp %d tcpgrp %d\n", (int)getsid(0), (int)getpgrp(), (int)tcgetpgrp(0));
  } else {
    fprintf(stderr, "kapsel-checker: unknown command %s\n", cmd);
    return 2;
  }
  return 0;
}
