/* linux.seccomp: the OCI profile (Docker's default included) compiled with
 * libseccomp on the Node thread, before fork, because libseccomp allocates.
 * The init only hands the finished BPF program to the kernel. Rules come
 * from agent/src/spec/seccomp.ts with actions, operators and arches already
 * in libseccomp's numbering. */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kapsel.h"

#define MAX_ARGS 6

static const uint32_t all_arches[] = {
    SCMP_ARCH_X86,     SCMP_ARCH_X86_64,   SCMP_ARCH_X32,     SCMP_ARCH_ARM,
    SCMP_ARCH_AARCH64, SCMP_ARCH_MIPS,     SCMP_ARCH_MIPS64,  SCMP_ARCH_MIPS64N32,
    SCMP_ARCH_MIPSEL,  SCMP_ARCH_MIPSEL64, SCMP_ARCH_PPC,     SCMP_ARCH_PPC64,
    SCMP_ARCH_PPC64LE, SCMP_ARCH_S390,     SCMP_ARCH_S390X,   SCMP_ARCH_PARISC,
    SCMP_ARCH_PARISC64, SCMP_ARCH_RISCV64,
};

static int fail(struct kapsel_record *err, int e, const char *what, const char *name) {
  kapsel_record_error(err, e, "seccomp", name);
  snprintf(err->message, sizeof err->message, "seccomp: %s%s%s%s", what,
           name != NULL ? " `" : "", name != NULL ? name : "", name != NULL ? "`" : "");
  return -e;
}

/* A name libseccomp knows for some architecture but not this one (Docker's
 * profile lists arm and s390 calls) is skipped; one it knows nowhere is a
 * typo, refused at create. */
static int known_elsewhere(const char *name) {
  for (size_t i = 0; i < sizeof all_arches / sizeof all_arches[0]; i++)
    if (seccomp_syscall_resolve_name_arch(all_arches[i], name) != __NR_SCMP_ERROR)
      return 1;
  return 0;
}

static int add_rule(scmp_filter_ctx ctx, const struct kapsel_request *req,
                    const struct kapsel_seccomp_rule *rule, struct kapsel_record *err) {
  uint32_t head[2];
  if (rule->len < 8)
    return fail(err, EINVAL, "malformed rule", NULL);
  memcpy(head, rule->data, 8);
  uint32_t action = head[0], nargs = head[1];
  size_t argbytes = (size_t)nargs * 24;
  if (nargs > MAX_ARGS * 4 || rule->len < 8 + argbytes + 1 || rule->data[rule->len - 1] != '\0')
    return fail(err, EINVAL, "malformed rule", NULL);
  const char *name = rule->data + 8 + argbytes;
  struct scmp_arg_cmp cmps[MAX_ARGS * 4];
  int dup_index = 0;
  for (uint32_t i = 0; i < nargs; i++) {
    uint32_t w[6];
    memcpy(w, rule->data + 8 + i * 24, 24);
    if (w[0] >= MAX_ARGS || w[1] < SCMP_CMP_NE || w[1] > SCMP_CMP_MASKED_EQ)
      return fail(err, EINVAL, "bad argument condition for", name);
    cmps[i].arg = w[0];
    cmps[i].op = (enum scmp_compare)w[1];
    cmps[i].datum_a = (uint64_t)w[2] | ((uint64_t)w[3] << 32);
    cmps[i].datum_b = (uint64_t)w[4] | ((uint64_t)w[5] << 32);
    for (uint32_t j = 0; j < i; j++)
      dup_index |= cmps[j].arg == cmps[i].arg;
  }
  int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) {
    if (known_elsewhere(name))
      return 0;
    return fail(err, EINVAL, "unknown syscall", name);
  }
  /* libseccomp refuses a rule whose action is the default one; runc skips
   * it too. */
  if (action == req->seccomp_default)
    return 0;
  int r;
  if (!dup_index) {
    r = seccomp_rule_add_array(ctx, action, nr, nargs, cmps);
  } else {
    /* libseccomp takes one condition per argument in a rule; runc adds a
     * rule per condition then (an OR). */
    r = 0;
    for (uint32_t i = 0; i < nargs && r == 0; i++)
      r = seccomp_rule_add_array(ctx, action, nr, 1, &cmps[i]);
  }
  if (r < 0)
    return fail(err, -r, "cannot add rule for", name);
  return 0;
}

static int export_bpf(scmp_filter_ctx ctx, struct kapsel_request *req, struct kapsel_record *err) {
  int fd = memfd_create("kapsel-seccomp", MFD_CLOEXEC);
  if (fd < 0)
    return fail(err, errno, "memfd_create", NULL);
  int r = seccomp_export_bpf(ctx, fd);
  struct stat st;
  if (r < 0 || fstat(fd, &st) < 0 || st.st_size <= 0 ||
      st.st_size % (off_t)sizeof(struct sock_filter) != 0) {
    close(fd);
    return fail(err, r < 0 ? -r : EIO, "exporting the filter failed", NULL);
  }
  struct sock_fprog *prog = calloc(1, sizeof *prog);
  struct sock_filter *code = malloc((size_t)st.st_size);
  if (prog == NULL || code == NULL || pread(fd, code, (size_t)st.st_size, 0) != st.st_size) {
    free(prog);
    free(code);
    close(fd);
    return fail(err, EIO, "reading the filter failed", NULL);
  }
  close(fd);
  prog->len = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
  prog->filter = code;
  req->seccomp_prog = prog;
  return 0;
}

int kapsel_seccomp_compile(struct kapsel_request *req, struct kapsel_record *err) {
  if (!req->has_seccomp)
    return 0;
  scmp_filter_ctx ctx = seccomp_init(req->seccomp_default);
  if (ctx == NULL)
    return fail(err, EINVAL, "bad default action", NULL);
  /* noNewPrivileges is the spec's to decide, not libseccomp's. */
  int r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
  for (size_t i = 0; i < req->nseccomp_arches && r >= 0; i++) {
    uint32_t arch = seccomp_arch_resolve_name(req->seccomp_arches[i]);
    if (arch == 0) {
      seccomp_release(ctx);
      return fail(err, EINVAL, "unknown architecture", req->seccomp_arches[i]);
    }
    r = seccomp_arch_add(ctx, arch);
    if (r == -EEXIST)
      r = 0;
    if (r < 0) {
      seccomp_release(ctx);
      return fail(err, -r, "cannot add architecture", req->seccomp_arches[i]);
    }
  }
  for (size_t i = 0; i < req->nseccomp_rules && r >= 0; i++)
    r = add_rule(ctx, req, &req->seccomp_rules[i], err);
  if (r >= 0)
    r = export_bpf(ctx, req, err);
  seccomp_release(ctx);
  return r < 0 ? r : 0;
}

void kapsel_seccomp_free(struct kapsel_request *req) {
  struct sock_fprog *prog = req->seccomp_prog;
  if (prog != NULL) {
    free(prog->filter);
    free(prog);
  }
  req->seccomp_prog = NULL;
}

/* After fork: hand the program to the kernel. */
int kapsel_seccomp_load(const struct kapsel_request *req, struct kapsel_record *err) {
  if (req->seccomp_prog == NULL)
    return 0;
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, req->seccomp_flags, req->seccomp_prog) < 0) {
    kapsel_record_error(err, errno, "seccomp", "SECCOMP_SET_MODE_FILTER");
    return -err->err;
  }
  return 0;
}
