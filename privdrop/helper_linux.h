/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the launch helper's two C files share: helper_linux.c carries out
 * the launch, wire_linux.c reads the spec and writes failure reports. The
 * names are prefixed because they are global in a binary that may link
 * other C.
 */
#ifndef UDSVISOR_HELPER_LINUX_H
#define UDSVISOR_HELPER_LINUX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "wire_linux.h"

/* Prefixes failures that are not a single syscall's (wire.go: helperOp). */
#define UDSV_HELPER_OP "launch helper"

struct udsv_rlimit {
	uint32_t resource;
	uint64_t cur, max;
};

/* The decoded spec. Strings point into the spec buffer, in place. */
struct udsv_spec {
	uint32_t ppid, uid, gid, umask, nfds;
	uint32_t flags; /* UDSV_FLAG_* */
	char *path, *dir;
	char **argv;        /* NULL-terminated */
	char **envp;        /* nenv entries, then room for LISTEN_PID and NULL */
	uint32_t nenv, ngroups, nrlimits, ncaps;
	gid_t *groups;
	struct udsv_rlimit rlimits[UDSV_MAX_RLIMITS];
	uint32_t caps[UDSV_MAX_CAPS];
};

/* Names for messages, indexed by RLIMIT_* (rlimits_linux.go has the same). */
extern const char *const udsv_rlimit_names[UDSV_MAX_RLIMITS];

/* The error pipe, once known; -1 before. */
extern int udsv_errfd;

/* Each writes a report on the error pipe and exits 127; see wire_linux.c. */
void udsv_fail(const char *op, const char *path, int err, const char *msg) __attribute__((noreturn));
void udsv_fail_sys(const char *op, int err) __attribute__((noreturn));
void udsv_fail_path(const char *op, const char *path, int err) __attribute__((noreturn));
void udsv_failf(int err, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

void udsv_write_all(int fd, const void *buf, size_t n);
int udsv_fd_from_env(const char *key);
void *udsv_alloc(size_t n, size_t size);

/* Reads, decodes and checks the spec, or fails. */
void udsv_read_spec(struct udsv_spec *s);

#endif
