/* SPDX-License-Identifier: Apache-2.0 */
//go:build linux && cgo

/*
 * The launch helper's side of the wire (wire_linux.h has the layout):
 * reading the spec from its pipe, with every length checked against the
 * bytes that remain and every count bounded before anything is allocated
 * for it, and writing the failure report that wire.go decodes.
 *
 * No stdio: only snprintf into static buffers and write(2), so nothing
 * can block on a FILE lock or buffer a report that never gets flushed.
 */
#ifndef _GNU_SOURCE /* CGO_CFLAGS may define it already (as 1): no redefinition */
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helper_linux.h"

const char *const udsv_rlimit_names[UDSV_MAX_RLIMITS] = {
	"RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK",
	"RLIMIT_CORE", "RLIMIT_RSS", "RLIMIT_NPROC", "RLIMIT_NOFILE",
	"RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS", "RLIMIT_SIGPENDING",
	"RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
};

/*
 * Static rather than on the stack: a spec may lower RLIMIT_STACK before a
 * failure has to be reported, and a fault then would lose the report.
 */
int udsv_errfd = -1;
static unsigned char report[UDSV_MAX_ERR_BYTES];
static char msgbuf[4096];

/* Retries short writes and EINTR; errors are ignored because the helper
 * exits right after and has nobody else to tell. */
void udsv_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static size_t put_u32(size_t off, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		report[off + i] = (unsigned char)(v >> (8 * i));
	return off + 4;
}

/* Each of the report's three strings is cut to a third of what is left
 * after the framing, so that any report fits in UDSV_MAX_ERR_BYTES. */
#define REPORT_STR_MAX ((UDSV_MAX_ERR_BYTES - 8 - 3 * 5) / 3)

static size_t put_str(size_t off, const char *s)
{
	size_t n = s != NULL ? strnlen(s, REPORT_STR_MAX) : 0;
	off = put_u32(off, (uint32_t)n);
	if (n > 0)
		memcpy(report + off, s, n);
	report[off + n] = '\0';
	return off + n + 1;
}

/* The report that decodeHelperError (wire.go) turns back into an error. */
void udsv_fail(const char *op, const char *path, int err, const char *msg)
{
	size_t n = put_u32(0, UDSV_REPORT_MAGIC);
	n = put_u32(n, (uint32_t)err);
	n = put_str(n, op);
	n = put_str(n, path);
	n = put_str(n, msg);
	udsv_write_all(udsv_errfd, report, n);
	_exit(127);
}

/* One syscall failed: *os.SyscallError, "setgroups: operation not permitted". */
void udsv_fail_sys(const char *op, int err)
{
	udsv_fail(op, NULL, err, NULL);
}

/* A syscall failed on a path or id: *os.PathError, "chdir /srv: permission denied". */
void udsv_fail_path(const char *op, const char *path, int err)
{
	udsv_fail(op, path, err, NULL);
}

/* Anything else: "launch helper: MSG", or "launch helper: MSG: <errno>"
 * wrapping err when it is not 0. */
void udsv_failf(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msgbuf, sizeof msgbuf, fmt, ap);
	va_end(ap);
	udsv_fail(UDSV_HELPER_OP, NULL, err, msgbuf);
}

/* Parses the fd number in the environment variable key; -1 unless it is
 * plain decimal digits naming an fd above stderr. The bound is checked
 * before each step: a long is 32 bits on 32-bit systems, where the
 * overflow of fd * 10 would wrap "4294967299" around to fd 3. */
int udsv_fd_from_env(const char *key)
{
	const char *v = getenv(key);
	int fd = 0;
	if (v == NULL || *v == '\0')
		return -1;
	for (; *v != '\0'; v++) {
		if (*v < '0' || *v > '9')
			return -1;
		int d = *v - '0';
		if (fd > (INT_MAX - d) / 10)
			return -1;
		fd = fd * 10 + d;
	}
	return fd >= 3 ? fd : -1;
}

/* Reads n bytes unless EOF comes first; returns the count, or -1. */
static ssize_t read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* calloc, bounded by the caller: every count was checked against the
 * bytes of the spec that remain (take_count). */
void *udsv_alloc(size_t n, size_t size)
{
	void *p = calloc(n > 0 ? n : 1, size);
	if (p == NULL)
		udsv_failf(ENOMEM, "decode spec: allocate %zu x %zu bytes", n, size);
	return p;
}

struct cursor {
	char *buf;
	size_t off, len;
};

static uint64_t le(const char *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | (unsigned char)p[i];
	return v;
}

static uint64_t take_int(struct cursor *c, int n, const char *what)
{
	if (c->len - c->off < (size_t)n)
		udsv_failf(0, "decode spec: truncated in %s at byte %zu", what, c->off);
	uint64_t v = le(c->buf + c->off, n);
	c->off += (size_t)n;
	return v;
}

static uint32_t take_u32(struct cursor *c, const char *what)
{
	return (uint32_t)take_int(c, 4, what);
}

/* A string is used in place: its length must fit in what is left, its
 * last byte must be the NUL the encoder put there, and it must hold no
 * other NUL, which would cut it short in C but not in Go. */
static char *take_str(struct cursor *c, const char *what)
{
	uint32_t n = take_u32(c, what);
	size_t at = c->off, left = c->len - at;
	if (left == 0 || n > left - 1)
		udsv_failf(0, "decode spec: %s of %u bytes at byte %zu runs past the end", what, n, at);
	char *s = c->buf + at;
	if (s[n] != '\0')
		udsv_failf(0, "decode spec: %s at byte %zu is not NUL-terminated", what, at);
	if (memchr(s, '\0', n) != NULL)
		udsv_failf(0, "decode spec: %s at byte %zu contains a NUL byte", what, at);
	c->off += (size_t)n + 1;
	return s;
}

/* A count is checked before anything is allocated for it: against max,
 * and against the bytes left, each element taking at least min. */
static uint32_t take_count(struct cursor *c, const char *what, uint32_t max, size_t min)
{
	uint32_t n = take_u32(c, what);
	size_t left = c->len - c->off;
	if (n > max)
		udsv_failf(0, "decode spec: %u %s, more than %u", n, what, max);
	if (n > left / min)
		udsv_failf(0, "decode spec: %u %s cannot fit in the %zu bytes left", n, what, left);
	return n;
}

static void decode_spec(char *buf, size_t len, struct udsv_spec *s)
{
	struct cursor c = {buf, 0, len};
	uint32_t i, n;

	s->ppid = take_u32(&c, "parent pid");
	s->uid = take_u32(&c, "uid");
	s->gid = take_u32(&c, "gid");
	s->umask = take_u32(&c, "umask");
	s->nfds = take_u32(&c, "socket count");
	s->flags = take_u32(&c, "flags");
	s->path = take_str(&c, "path");
	s->dir = take_str(&c, "dir");

	n = take_count(&c, "arguments", UDSV_MAX_SPEC_BYTES, 5);
	s->argv = udsv_alloc((size_t)n + 1, sizeof *s->argv);
	for (i = 0; i < n; i++)
		s->argv[i] = take_str(&c, "argument");
	if (n == 0)
		udsv_failf(0, "spec has an empty argv");

	s->nenv = take_count(&c, "environment entries", UDSV_MAX_SPEC_BYTES, 5);
	/* Room for LISTEN_PID, LISTEN_PIDFDID and the end. */
	s->envp = udsv_alloc((size_t)s->nenv + 3, sizeof *s->envp);
	for (i = 0; i < s->nenv; i++)
		s->envp[i] = take_str(&c, "environment entry");

	s->ngroups = take_count(&c, "groups", UDSV_MAX_GROUPS, 4);
	s->groups = udsv_alloc(s->ngroups, sizeof *s->groups);
	for (i = 0; i < s->ngroups; i++)
		s->groups[i] = take_u32(&c, "group");

	s->nrlimits = take_count(&c, "resource limits", UDSV_MAX_RLIMITS, 20);
	for (i = 0; i < s->nrlimits; i++) {
		s->rlimits[i].resource = take_u32(&c, "resource limit");
		s->rlimits[i].cur = take_int(&c, 8, "resource limit");
		s->rlimits[i].max = take_int(&c, 8, "resource limit");
	}

	s->ncaps = take_count(&c, "capabilities", UDSV_MAX_CAPS, 4);
	for (i = 0; i < s->ncaps; i++)
		s->caps[i] = take_u32(&c, "capability");

	if (c.off != c.len)
		udsv_failf(0, "decode spec: %zu bytes left over at byte %zu", c.len - c.off, c.off);
}

/* What Prepare's validate guarantees, checked again where the C would
 * otherwise misbehave (shifts, table indexes) or quietly do something
 * else than the supervisor meant (a relative path, a second LISTEN_PID). */
static void check_spec(const struct udsv_spec *s)
{
	uint32_t i;
	if (s->path[0] != '/')
		udsv_failf(0, "spec path \"%.200s\" is not absolute", s->path);
	if (s->dir[0] != '/')
		udsv_failf(0, "spec working directory \"%.200s\" is not absolute", s->dir);
	if (s->umask > 0777)
		udsv_failf(0, "spec umask %#o is not a permission mask", s->umask);
	/* A newer supervisor's step that this helper would skip in silence,
	 * e.g. a namespace, must stop the launch instead. */
	if ((s->flags & ~UDSV_FLAGS_KNOWN) != 0)
		udsv_failf(0, "spec has unknown flags %#x", s->flags & ~UDSV_FLAGS_KNOWN);
	for (i = 0; i < s->nenv; i++) {
		const char *e = s->envp[i], *eq = strchr(e, '=');
		if (eq == NULL || eq == e)
			udsv_failf(0, "spec environment entry \"%.200s\" is not KEY=VALUE", e);
		if (strncmp(e, "LISTEN_PID=", 11) == 0 || strncmp(e, "LISTEN_PIDFDID=", 15) == 0)
			udsv_failf(0, "spec environment sets %.*s, which the helper adds", (int)(eq - e), e);
	}
	for (i = 0; i < s->nrlimits; i++) {
		const struct udsv_rlimit *l = &s->rlimits[i];
		if (l->resource >= UDSV_MAX_RLIMITS)
			udsv_failf(0, "spec has unknown resource limit %u", l->resource);
		if (l->cur > l->max)
			udsv_failf(0, "spec %s: soft limit %llu is above the hard limit %llu",
				udsv_rlimit_names[l->resource], (unsigned long long)l->cur, (unsigned long long)l->max);
	}
	for (i = 0; i < s->ncaps; i++)
		if (s->caps[i] >= UDSV_MAX_CAPS)
			udsv_failf(0, "spec has unknown capability %u", s->caps[i]);
	if (s->ncaps > 0 && s->uid == 0)
		udsv_failf(0, "spec grants ambient capabilities to uid 0, which keeps every capability");
}

/* Reads and checks the spec. The pipes sit right after the sockets (see
 * Prepare), which is how the helper checks that the socket count matches
 * what it was given. */
void udsv_read_spec(struct udsv_spec *s)
{
	char hdr[8], extra;
	int specfd = udsv_fd_from_env(UDSV_ENV_SPEC_FD);
	if (specfd < 0) {
		const char *v = getenv(UDSV_ENV_SPEC_FD);
		udsv_failf(0, "%s=\"%.32s\" is not an fd number", UDSV_ENV_SPEC_FD, v != NULL ? v : "");
	}

	ssize_t r = read_full(specfd, hdr, sizeof hdr);
	if (r < 0)
		udsv_failf(errno, "read spec");
	if (r < (ssize_t)sizeof hdr)
		udsv_failf(0, "decode spec: %zd bytes, shorter than the header", r);
	uint32_t magic = (uint32_t)le(hdr, 4), len = (uint32_t)le(hdr + 4, 4);
	if (magic != UDSV_SPEC_MAGIC)
		udsv_failf(0, "decode spec: magic %#x, want %#x (supervisor and helper from different builds?)", magic, UDSV_SPEC_MAGIC);
	if (len > UDSV_MAX_SPEC_BYTES - sizeof hdr)
		udsv_failf(0, "read spec: more than %d bytes", UDSV_MAX_SPEC_BYTES);
	char *buf = udsv_alloc(len, 1);
	if ((r = read_full(specfd, buf, len)) < 0)
		udsv_failf(errno, "read spec");
	if ((size_t)r < len)
		udsv_failf(0, "decode spec: truncated: %zd of %u bytes", r, len);
	/* The supervisor closes its end after the spec: EOF must follow. */
	if ((r = read_full(specfd, &extra, 1)) < 0)
		udsv_failf(errno, "read spec");
	if (r > 0)
		udsv_failf(0, "read spec: more than the %u bytes its header announces", len);
	if (close(specfd) != 0 && errno != EINTR)
		udsv_failf(errno, "close spec pipe");

	decode_spec(buf, len, s);
	if (s->nfds > INT_MAX - 3 || 3 + (int)s->nfds != specfd)
		udsv_failf(0, "spec has %u sockets but its pipe is fd %d", s->nfds, specfd);
	if (udsv_errfd != specfd + 1)
		udsv_failf(0, "error pipe is fd %d, want %d", udsv_errfd, specfd + 1);
	check_spec(s);
	for (int fd = 3; fd < 3 + (int)s->nfds; fd++)
		if (fcntl(fd, F_GETFD) < 0)
			udsv_failf(errno, "socket fd %d", fd);
}
