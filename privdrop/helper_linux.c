/* SPDX-License-Identifier: Apache-2.0 */
//go:build linux && cgo

/*
 * The launch helper, in the shape of runc's nsexec (libcontainer/nsenter):
 * an ELF constructor that glibc runs before main, and so before the Go
 * runtime starts. In every other process it returns at once. In the
 * helper (argv[1] is privdrop.helperArg) it reads the Spec, becomes the
 * service's user and execs the command, or reports why not on the error
 * pipe and exits 127; it never returns to Go. Starting the Go runtime of
 * the 12 MB binary cost 3-5 ms of CPU per launch (about 400 page faults);
 * the helper now starts about as fast as an empty C program (60 faults).
 *
 * The process has exactly one thread: no runtime started any. Capability
 * sets, securebits, the signal mask and the parent-death signal are per
 * thread, and execve keeps the calling thread's, so here they are simply
 * the process's. For the same reason glibc's setgroups, setresgid and
 * setresuid are plain syscalls here (no SIGSETXID broadcast to threads).
 *
 * The spec and the failure report are in wire_linux.c. No stdio here
 * either: snprintf into static buffers (a lowered RLIMIT_STACK must not
 * fault a report away) and write(2).
 */
#ifndef _GNU_SOURCE /* CGO_CFLAGS may define it already (as 1): no redefinition */
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

#include "helper_linux.h"

/*
 * The constructor reads argc and argv from its parameters, which glibc
 * passes to the executable's constructors (csu/libc-start.c, elf/dl-init.c)
 * but musl, for one, does not: there they would be whatever the registers
 * held, in every process that links privdrop.
 */
#ifndef __GLIBC__
#error "privdrop's launch helper needs glibc, which passes argc and argv to constructors"
#endif

#ifndef SYS_close_range
#define SYS_close_range 436 /* the same number on every architecture */
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* The kernel's sigset_t: glibc's _NSIG counts signal 0 as well. */
#define KERNEL_SIGSET_BYTES ((_NSIG - 1) / 8)

static char numbuf[32], listen_pid[32], listen_pidfdid[48], list[2][512];

/*
 * Reports that a syscall on id failed, as "setuid 1001: <errno>". errno
 * is saved before the id is formatted: snprintf may change errno even when
 * it succeeds (C11 7.5p3), and formatting the id in an argument next to
 * errno would leave it to the compiler which of the two comes first.
 */
static void __attribute__((noreturn)) fail_id(const char *op, uint32_t id)
{
	int err = errno;
	snprintf(numbuf, sizeof numbuf, "%u", id);
	udsv_fail_path(op, numbuf, err);
}

/*
 * Leaves no signal ignored or handled, so that the command starts with
 * every disposition at SIG_DFL (execve resets handled signals to SIG_DFL
 * but keeps SIG_IGN). The raw syscall, not sigaction(3): glibc refuses
 * its reserved signals 32 and 33 with EINVAL, but installs its handlers
 * on them only when a program first cancels a thread or changes ids with
 * several threads, so a SIG_IGN inherited there would reach the command.
 * An all-zero kernel struct sigaction means SIG_DFL, no flags and an
 * empty mask on every architecture; the buffer is larger than any of them.
 */
static void reset_signals(void)
{
	unsigned long dfl[8];
	memset(dfl, 0, sizeof dfl);
	for (int sig = 1; sig < _NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (syscall(SYS_rt_sigaction, (long)sig, dfl, NULL, (size_t)KERNEL_SIGSET_BYTES) != 0)
			udsv_failf(errno, "rt_sigaction %d", sig);
	}
}

/*
 * Moves the helper, and so the command, into a new network namespace in
 * which only the loopback interface exists, and brings it up: the
 * command's 127.0.0.1 and ::1 are its own, invisible to the host and to
 * every other process, and a port it binds there can be reached only
 * through an fd made inside the namespace. The sockets at 3.. keep
 * working: a socket belongs to the namespace it was made in, whoever
 * holds its fd.
 *
 * A new namespace's lo is down and has no address; bringing it up makes
 * the kernel add 127.0.0.1/8 and ::1 and set IFF_RUNNING, before the
 * ioctl returns. Checked afterwards, as the ids are: trust the kernel's
 * answer, not the calls' return values.
 */
static void private_network(void)
{
	struct ifreq ifr;

	if (unshare(CLONE_NEWNET) != 0)
		udsv_fail_sys("unshare CLONE_NEWNET", errno);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		udsv_fail_sys("socket AF_INET", errno);
	memset(&ifr, 0, sizeof ifr);
	memcpy(ifr.ifr_name, "lo", sizeof "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0)
		udsv_fail_path("ioctl SIOCGIFFLAGS", "lo", errno);
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0)
		udsv_fail_path("ioctl SIOCSIFFLAGS", "lo", errno);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0)
		udsv_fail_path("ioctl SIOCGIFFLAGS", "lo", errno);
	if ((ifr.ifr_flags & IFF_UP) == 0)
		udsv_failf(0, "ioctl SIOCSIFFLAGS lo: still down afterwards (flags %#x)", (unsigned)(unsigned short)ifr.ifr_flags);
	close(fd);
}

/* Applies the limits and checks them with the kernel. It runs as root,
 * before the privilege drop: only root may raise a hard limit. The 64-bit
 * calls keep RLIM_INFINITY (all ones) intact on 32-bit systems too. */
static void set_rlimits(const struct udsv_spec *s)
{
	for (uint32_t i = 0; i < s->nrlimits; i++) {
		const struct udsv_rlimit *l = &s->rlimits[i];
		const char *name = udsv_rlimit_names[l->resource];
		struct rlimit64 want = {l->cur, l->max}, got;
		if (setrlimit64((int)l->resource, &want) != 0)
			udsv_fail_path("setrlimit", name, errno);
		if (getrlimit64((int)l->resource, &got) != 0)
			udsv_fail_path("getrlimit", name, errno);
		if (got.rlim_cur != want.rlim_cur || got.rlim_max != want.rlim_max)
			udsv_failf(0, "setrlimit %s: %llu/%llu afterwards, want %llu/%llu", name,
				(unsigned long long)got.rlim_cur, (unsigned long long)got.rlim_max,
				(unsigned long long)want.rlim_cur, (unsigned long long)want.rlim_max);
	}
}

static int cmp_gid(const void *a, const void *b)
{
	gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;
	return (x > y) - (x < y);
}

/* Sorts g and drops duplicates; returns the new length. */
static size_t sort_unique(gid_t *g, size_t n)
{
	size_t m = 0;
	if (n == 0)
		return 0;
	qsort(g, n, sizeof *g, cmp_gid);
	for (size_t i = 1; i < n; i++)
		if (g[i] != g[m])
			g[++m] = g[i];
	return m + 1;
}

/* Formats ids as "[1 2 3]", cut with "..." to fit buf. */
static const char *fmt_ids(char *buf, size_t size, const gid_t *ids, size_t n)
{
	size_t off = (size_t)snprintf(buf, size, "[");
	for (size_t i = 0; i < n && off < size - 5; i++)
		off += (size_t)snprintf(buf + off, size - off, i ? " %u" : "%u", (unsigned)ids[i]);
	if (off >= size - 5)
		snprintf(buf + size - 5, 5, "...]");
	else
		snprintf(buf + off, size - off, "]");
	return buf;
}

/* Trust the kernel's answer, not the calls' return values. */
static void check_groups(struct udsv_spec *s)
{
	int n = getgroups(0, NULL);
	if (n < 0)
		udsv_fail_sys("getgroups", errno);
	gid_t *got = udsv_alloc((size_t)n, sizeof *got);
	if ((n = getgroups(n, got)) < 0)
		udsv_fail_sys("getgroups", errno);
	size_t ng = sort_unique(got, (size_t)n), nw = sort_unique(s->groups, s->ngroups);
	if (ng != nw || (ng > 0 && memcmp(got, s->groups, ng * sizeof *got) != 0))
		udsv_failf(0, "setgroups: groups are %s afterwards, want %s",
			fmt_ids(list[0], sizeof list[0], got, ng), fmt_ids(list[1], sizeof list[1], s->groups, nw));
}

/* Formats capability sets the way Go prints [2]unix.CapUserData. */
static const char *fmt_caps(char *buf, size_t size, const struct __user_cap_data_struct d[2])
{
	snprintf(buf, size, "[{Effective:%u Permitted:%u Inheritable:%u} {Effective:%u Permitted:%u Inheritable:%u}]",
		 d[0].effective, d[0].permitted, d[0].inheritable, d[1].effective, d[1].permitted, d[1].inheritable);
	return buf;
}

/*
 * Leaves exactly the granted caps in the permitted, effective and
 * inheritable sets, raises each in the ambient set, and checks the result
 * with the kernel. With no caps every set is emptied: setuid to non-zero
 * already cleared permitted and effective unless SECBIT_NO_SETUID_FIXUP
 * was inherited, but never the inheritable set.
 *
 * The ambient set is what carries caps across the exec of a binary
 * without file capabilities, no_new_privs or not (capabilities(7)); it
 * may only hold what is both permitted and inheritable, hence the order.
 */
static void set_capabilities(const struct udsv_spec *s)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct want[2], data[2], got[2];
	uint64_t want_amb = 0, got_amb = 0;
	uint32_t i;

	memset(want, 0, sizeof want);
	for (i = 0; i < s->ncaps; i++) {
		uint32_t c = s->caps[i], bit = 1U << (c % 32);
		want[c / 32].permitted |= bit;
		want[c / 32].effective |= bit;
		want[c / 32].inheritable |= bit;
		want_amb |= 1ULL << c;
	}
	memcpy(data, want, sizeof data); /* so that want stays what we asked for */
	if (syscall(SYS_capset, &hdr, data) != 0)
		udsv_fail_sys("capset", errno);
	for (i = 0; i < s->ncaps; i++)
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, (unsigned long)s->caps[i], 0, 0) != 0)
			fail_id("prctl PR_CAP_AMBIENT_RAISE", s->caps[i]);

	memset(got, 0, sizeof got);
	if (syscall(SYS_capget, &hdr, got) != 0)
		udsv_fail_sys("capget", errno);
	if (s->ncaps == 0 && (got[0].effective | got[0].permitted | got[0].inheritable |
				got[1].effective | got[1].permitted | got[1].inheritable) != 0)
		udsv_failf(0, "capset: capabilities remain after dropping them: %s", fmt_caps(list[0], sizeof list[0], got));
	if (s->ncaps > 0 && memcmp(got, want, sizeof got) != 0)
		udsv_failf(0, "capset: capabilities are %s afterwards, want %s",
			fmt_caps(list[0], sizeof list[0], got), fmt_caps(list[1], sizeof list[1], want));

	/* capget does not report the ambient set, and whatever the
	 * supervisor had in it must not reach the command: ask the kernel
	 * capability by capability. EINVAL: past the kernel's last one. */
	for (unsigned long c = 0; c < UDSV_MAX_CAPS; c++) {
		int set = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0);
		if (set < 0 && errno == EINVAL)
			break;
		if (set < 0)
			udsv_fail_sys("prctl PR_CAP_AMBIENT_IS_SET", errno);
		if (set == 1)
			got_amb |= 1ULL << c;
	}
	if (got_amb != want_amb)
		udsv_failf(0, "ambient capabilities are %#llx afterwards, want %#llx",
			(unsigned long long)got_amb, (unsigned long long)want_amb);
}

/*
 * Sets the exact supplementary groups, then the gid, then the uid, and
 * checks the result; the capability sets end up empty, or exactly the
 * granted ones. Any failure is fatal to the launch: nothing may run as
 * root afterwards (T11).
 */
static void drop_privileges(struct udsv_spec *s)
{
	uid_t r, e, sv;
	gid_t rg, eg, sg;

	/* Ambient capabilities would survive the exec of an ordinary
	 * binary; the kernel drops them at setuid too, but only when no
	 * securebit says otherwise. EINVAL: a kernel older than 4.3 has none. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
		udsv_fail_sys("prctl PR_CAP_AMBIENT_CLEAR_ALL", errno);

	/* Keeps the permitted set across the uid change, so that
	 * set_capabilities can narrow it to the granted caps; execve clears
	 * the flag again. */
	if (s->ncaps > 0 && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0)
		udsv_fail_sys("prctl PR_SET_KEEPCAPS", errno);

	/* Always called, even with no groups: skipping it (NoSetGroups)
	 * keeps root's groups, e.g. 0, 4 (adm), 27 (sudo) (SECURITY-NOTES 0.6). */
	if (setgroups(s->ngroups, s->groups) != 0)
		udsv_fail_sys("setgroups", errno);
	/* Real, effective and saved ids all change: with a root saved id
	 * the service could switch back with setuid(0). */
	if (setresgid(s->gid, s->gid, s->gid) != 0)
		fail_id("setgid", s->gid);
	if (setresuid(s->uid, s->uid, s->uid) != 0)
		fail_id("setuid", s->uid);

	/* Trust the kernel's answer, not the calls' return values: an id of
	 * 4294967295 (-1) means "leave unchanged" to setresuid. */
	if (getresgid(&rg, &eg, &sg) != 0)
		udsv_fail_sys("getresgid", errno);
	if (rg != s->gid || eg != s->gid || sg != s->gid)
		udsv_failf(0, "setgid %u: gids are %u/%u/%u afterwards", s->gid, (unsigned)rg, (unsigned)eg, (unsigned)sg);
	if (getresuid(&r, &e, &sv) != 0)
		udsv_fail_sys("getresuid", errno);
	if (r != s->uid || e != s->uid || sv != s->uid)
		udsv_failf(0, "setuid %u: uids are %u/%u/%u afterwards", s->uid, (unsigned)r, (unsigned)e, (unsigned)sv);
	check_groups(s);

	/* A root service (allowed by config) keeps root's capabilities;
	 * no_new_privs still applies. */
	if (s->uid != 0)
		set_capabilities(s);
}

/* Sets FD_CLOEXEC on every fd >= first without close_range: a walk of
 * /proc/self/fd. Its own fd is close-on-exec already. */
static void cloexec_scan(int first)
{
	static char buf[4096]; /* struct linux_dirent64 records */
	int d = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d < 0)
		udsv_fail_path("open", "/proc/self/fd", errno);
	for (;;) {
		long n = syscall(SYS_getdents64, d, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			udsv_failf(errno, "read /proc/self/fd");
		if (n == 0)
			break;
		for (long off = 0; off < n;) {
			/* d_reclen at 16, d_name at 19 (linux_dirent64) */
			unsigned short reclen;
			memcpy(&reclen, buf + off + 16, sizeof reclen);
			const char *name = buf + off + 19;
			if (reclen == 0)
				udsv_failf(0, "read /proc/self/fd: empty directory record");
			off += reclen;
			if (name[0] < '0' || name[0] > '9')
				continue; /* "." and ".." */
			long fd = strtol(name, NULL, 10);
			if (fd < first || fd > INT_MAX || fd == d)
				continue;
			if (fcntl((int)fd, F_SETFD, FD_CLOEXEC) != 0 && errno != EBADF)
				udsv_failf(errno, "set close-on-exec on fd %ld", fd);
		}
	}
	if (close(d) != 0 && errno != EINTR)
		udsv_failf(errno, "close /proc/self/fd");
}

/*
 * Every fd from 3+n up closes at exec, and the sockets at 3..3+n-1 do
 * not. The fds are marked, not closed, so that the error pipe stays open
 * for a failed exec's report and EOF on it means the exec succeeded.
 * CLOSE_RANGE_CLOEXEC needs Linux 5.11: ENOSYS before 5.9, EINVAL before
 * 5.11 fall back to the walk.
 */
static void prepare_fds(uint32_t nfds)
{
	int first = 3 + (int)nfds;
	if (syscall(SYS_close_range, (unsigned long)first, (unsigned long)~0U,
		    (unsigned long)CLOSE_RANGE_CLOEXEC) != 0) {
		if (errno != ENOSYS && errno != EINVAL)
			udsv_fail_sys("close_range", errno);
		cloexec_scan(first);
	}
	/* os/exec dup2s ExtraFiles without FD_CLOEXEC, but a socket the
	 * service never receives would be silent, so make sure. */
	for (int fd = 3; fd < first; fd++)
		if (fcntl(fd, F_SETFD, 0) != 0)
			udsv_failf(errno, "clear close-on-exec on socket fd %d", fd);
}

/* Carries out the launch; the order of the steps is part of the
 * contract, and each comment names what it prevents. */
/* PIDFS_MAGIC of linux/magic.h, which Debian 12's headers predate. */
#define UDSV_PIDFS_MAGIC 0x50494446

/* LISTEN_PIDFDID (systemd v259) is the inode id of a pidfd of the
 * command, which tells an app its own activation from a stale
 * environment more surely than a pid, which can be reused. Only pidfs
 * (Linux 6.9) gives a pidfd an inode of its own, and only a 64-bit
 * st_ino holds it whole; elsewhere the variable is left out. */
static void set_listen_pidfdid(struct udsv_spec *s)
{
	struct statfs sfs;
	struct stat st;
	int pfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	if (pfd < 0)
		return;
	if (sizeof st.st_ino >= 8 && fstatfs(pfd, &sfs) == 0 && sfs.f_type == UDSV_PIDFS_MAGIC && fstat(pfd, &st) == 0) {
		snprintf(listen_pidfdid, sizeof listen_pidfdid, "LISTEN_PIDFDID=%llu", (unsigned long long)st.st_ino);
		s->envp[s->nenv + 1] = listen_pidfdid;
	}
	close(pfd);
}

static void __attribute__((noreturn)) run(void)
{
	static struct udsv_spec s;
	sigset_t none;

	udsv_read_spec(&s);

	/* SIG_IGN survives execve, so a supervisor started under nohup, or
	 * one that ignored HUP or PIPE, would make its services deaf to
	 * them (SECURITY-NOTES 0.5, T15). */
	reset_signals();

	/* Without no_new_privs a setuid-root binary or file capabilities
	 * would give the service root back (0.7, T12). */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		udsv_fail_sys("prctl PR_SET_NO_NEW_PRIVS", errno);

	/* While still root: unshare(CLONE_NEWNET) needs CAP_SYS_ADMIN, and
	 * bringing lo up needs CAP_NET_ADMIN over the new namespace, which
	 * root has because the namespace belongs to root's user namespace.
	 * After the drop the command holds neither (unless granted), so it
	 * can neither reconfigure its namespace nor leave it for the host's
	 * (setns needs CAP_SYS_ADMIN). Before the resource limits, so that
	 * a low RLIMIT_NOFILE cannot refuse the socket for the ioctls. */
	if ((s.flags & UDSV_FLAG_PRIVATE_NETWORK) != 0)
		private_network();

	/* While still root: only root may raise a hard limit above the
	 * supervisor's, and RLIMIT_NPROC must be in place when setuid
	 * counts the user's processes against it. */
	set_rlimits(&s);

	drop_privileges(&s);

	/* Changing the euid cleared the parent-death signal the supervisor
	 * set at fork. Re-arm it, then make sure the supervisor did not die
	 * in the window before it was armed: we would have been reparented
	 * and nobody would ever kill the service (0.3). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		udsv_fail_sys("prctl PR_SET_PDEATHSIG", errno);
	pid_t ppid = getppid();
	if ((uint32_t)ppid != s.ppid)
		udsv_failf(0, "supervisor %u exited before the exec (parent is now %d)", s.ppid, (int)ppid);

	umask((mode_t)s.umask);
	/* Entered as the service user, so that a directory it may not enter
	 * fails here instead of being entered with root's rights; the path
	 * comes from the config, never from an inherited fd (runc
	 * CVE-2024-21626). */
	if (chdir(s.dir) != 0)
		udsv_fail_path("chdir", s.dir, errno);

	/* LISTEN_PID must be the command's own pid, which exec keeps:
	 * sd_listen_fds, go-systemd and gunicorn ignore the fds otherwise,
	 * and gunicorn then unlinks the socket when it stops (0.11, 0.14). */
	snprintf(listen_pid, sizeof listen_pid, "LISTEN_PID=%d", (int)getpid());
	s.envp[s.nenv] = listen_pid;
	set_listen_pidfdid(&s);

	/* Whatever the supervisor inherited or leaked must not reach the
	 * service (0.4, T10); this also marks the error pipe. */
	prepare_fds(s.nfds);

	/* Last, so that nothing in between can block a signal again: exec
	 * keeps the mask inherited from the forking thread, and a blocked
	 * SIGTERM would make the service unstoppable but by SIGKILL. */
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) != 0)
		udsv_fail_sys("sigprocmask", errno);

	execve(s.path, s.argv, s.envp);
	udsv_fail_path("exec", s.path, errno);
}

/* glibc calls the constructors of the executable with main's arguments. */
__attribute__((constructor)) static void udsvisor_launch_helper(int argc, char **argv, char **envp)
{
	(void)envp;
	if (argc < 2 || strcmp(argv[1], UDSV_HELPER_ARG) != 0)
		return;
	udsv_errfd = udsv_fd_from_env(UDSV_ENV_ERR_FD);
	if (udsv_errfd < 0) {
		/* No pipe to report on: the command's stderr is the only
		 * witness left. */
		static char msg[128];
		const char *v = getenv(UDSV_ENV_ERR_FD);
		int n = snprintf(msg, sizeof msg, "udsvisor: %s: %s=\"%.32s\" is not an fd number\n",
				 UDSV_HELPER_OP, UDSV_ENV_ERR_FD, v != NULL ? v : "");
		udsv_write_all(2, msg, n > 0 && (size_t)n < sizeof msg ? (size_t)n : 0);
		_exit(127);
	}
	/* The supervisor runs as root and execs the helper without changing
	 * ids, so the kernel never marks the helper's exec secure. If it did,
	 * whoever ran udsvisor gained privileges at the exec: the binary is
	 * set-user-ID, set-group-ID or has file capabilities (AT_SECURE,
	 * getauxval(3)). Any local user could then run it with helperArg and
	 * a spec of their own, for uid 0 and a shell. */
	if (getauxval(AT_SECURE) != 0)
		udsv_failf(0, "refusing to run: the exec gained privileges (AT_SECURE: "
			      "set-user-ID, set-group-ID or file capabilities on the binary)");
	run();
}
