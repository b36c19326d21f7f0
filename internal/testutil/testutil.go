// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Package testutil holds what the root tests of several packages share:
// the root gate that refuses to skip under UDSVISOR_CI, test users made
// with useradd, builds of real test binaries into world-readable
// directories, and readers of /proc.
package testutil

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ci reports whether the tests run under .ci/run, where a missing
// privilege or peer program is a failure rather than a skip.
func ci() bool { return os.Getenv("UDSVISOR_CI") == "1" }

// Unavailable skips the test, or fails it under UDSVISOR_CI=1.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if ci() {
		t.Fatalf("UDSVISOR_CI=1: %s", msg)
	}
	t.Skip(msg)
}

// RequireRoot skips (or fails under CI) unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root (euid %d)", os.Geteuid())
	}
}

// RequireCommand returns the path of name, skipping (or failing under CI)
// when it is not installed.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "%s is not installed: %v", name, err)
	}
	return p
}

// User is a test user created with useradd.
type User struct {
	Name string
	UID  uint32
	GID  uint32
}

// EnsureUser creates the system user name (no home, no login shell) with
// the given supplementary groups unless it exists, and returns its ids.
// It needs root, as RequireRoot does.
// Test packages run in parallel, so an existing user and a locked
// /etc/passwd are expected (see shadowTool); the users are kept afterwards
// for the same reason (udsv-* is the reserved prefix).
func EnsureUser(t testing.TB, name string, groups ...string) User {
	t.Helper()
	RequireRoot(t)
	for attempt := 0; ; attempt++ {
		if u, err := user.Lookup(name); err == nil {
			uid, _ := strconv.ParseUint(u.Uid, 10, 32)
			gid, _ := strconv.ParseUint(u.Gid, 10, 32)
			if len(groups) > 0 {
				// Membership may have been created by another package
				// without these groups; usermod -a is idempotent.
				shadowTool(t, "usermod", "-a", "-G", strings.Join(groups, ","), name)
			}
			return User{Name: name, UID: uint32(uid), GID: uint32(gid)}
		}
		if attempt > 0 {
			t.Fatalf("useradd %s: done, or the name is taken, yet there is no such user", name)
		}
		args := []string{"-r", "-M", "-U", "-s", "/usr/sbin/nologin"}
		if len(groups) > 0 {
			args = append(args, "-G", strings.Join(groups, ","))
		}
		shadowTool(t, "useradd", append(args, name)...)
	}
}

// EnsureGroup creates the system group name unless it exists and returns
// its gid. It needs root, as RequireRoot does.
func EnsureGroup(t testing.TB, name string) uint32 {
	t.Helper()
	RequireRoot(t)
	for attempt := 0; ; attempt++ {
		if g, err := user.LookupGroup(name); err == nil {
			gid, _ := strconv.ParseUint(g.Gid, 10, 32)
			return uint32(gid)
		}
		if attempt > 0 {
			t.Fatalf("groupadd %s: done, or the name is taken, yet there is no such group", name)
		}
		shadowTool(t, "groupadd", "-r", name)
	}
}

// shadowTool runs useradd, groupadd or usermod; the name it acts on is
// the last of args. Exit status 9 (the name was taken meanwhile by
// another package) returns, for the caller to look the name up again.
// Status 1 or 10 (the passwd or group file could not be updated: another
// package's tool holds its lock) waits until the lock is released and
// runs the tool again, up to 50 times; any other failure fails the test.
func shadowTool(t testing.TB, tool string, args ...string) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		out, err := exec.Command(tool, args...).CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return
		case errors.As(err, &ee) && ee.ExitCode() == 9:
			return
		case errors.As(err, &ee) && (ee.ExitCode() == 1 || ee.ExitCode() == 10) && attempt < 50:
			if werr := waitShadowUnlocked(10 * time.Second); werr != nil {
				t.Fatalf("%s %s: %v: %s (%v)", tool, args[len(args)-1], err, out, werr)
			}
		default:
			t.Fatalf("%s %s: %v: %s", tool, args[len(args)-1], err, out)
		}
	}
}

// shadowLocks are the lock files the shadow tools hold in /etc while
// they write (commonio_lock: created with link, removed with unlink).
var shadowLocks = []string{"passwd.lock", "shadow.lock", "group.lock", "gshadow.lock", "subuid.lock", "subgid.lock"}

// waitShadowUnlocked returns once /etc holds none of shadowLocks, or an
// error after limit. An inotify watch on /etc, set before the first look,
// wakes it when a lock file goes: no sleep, and no release missed.
func waitShadowUnlocked(limit time.Duration) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return os.NewSyscallError("inotify_init1", err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, "/etc", unix.IN_DELETE|unix.IN_MOVED_FROM); err != nil {
		return os.NewSyscallError("inotify_add_watch /etc", err)
	}
	deadline := time.Now().Add(limit)
	events := make([]byte, 4096)
	for {
		held := slices.IndexFunc(shadowLocks, func(name string) bool {
			_, err := os.Lstat(filepath.Join("/etc", name))
			return err == nil
		})
		if held < 0 {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("/etc/%s still there after %v", shadowLocks[held], limit)
		}
		_, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(left.Milliseconds())+1)
		if err != nil && err != unix.EINTR {
			return os.NewSyscallError("poll", err)
		}
		_, _ = unix.Read(fd, events) // drain; what changed is looked at again above
	}
}

// RunDir makes a fresh root-owned 0755 directory under /run (a tmpfs on
// Debian, like production socket directories) and removes it after the
// test. Unlike t.TempDir, its parents are traversable by test users.
func RunDir(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	dir, err := os.MkdirTemp("/run", "udsvisor-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Build compiles the Go package pkg (an import path or a directory) to a
// binary named after its last element in dir, which it makes 0755 so that
// test users can exec it (go test keeps its own binaries under a 0700
// directory). Call it from TestMain.
func Build(dir, pkg string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	// The caller's umask may be udsvisor's 0077.
	if err := os.Chmod(out, 0o755); err != nil {
		return "", err
	}
	return out, nil
}

// RunBuilt is a TestMain that builds the Go packages pkgs, as Build does,
// into a fresh temporary directory, passes the directory and the
// binaries' paths (in the order of pkgs) to prepare, runs the tests and
// removes the directory. It returns the exit code for os.Exit: 1, with
// the error on stderr, when a build or prepare fails.
func RunBuilt(m *testing.M, pkgs []string, prepare func(dir string, bins []string) error) int {
	dir, err := os.MkdirTemp("", "udsvisor-"+filepath.Base(os.Args[0])+"-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bins := make([]string, len(pkgs))
	for i, pkg := range pkgs {
		if bins[i], err = Build(dir, pkg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if err := prepare(dir, bins); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// ProcStatus returns the fields of /proc/PID/status, e.g. "Uid", "Groups",
// "NoNewPrivs", "CapEff", "SigIgn", with their values trimmed.
func ProcStatus(pid int) (map[string]string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, sc.Err()
}

// ProcEnviron returns /proc/PID/environ as KEY=VALUE strings.
func ProcEnviron(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), nil
}

// ProcFDs returns the targets of /proc/PID/fd/N keyed by N.
func ProcFDs(pid int) (map[int]string, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	m := make(map[int]string, len(ents))
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		m[n] = target
	}
	return m, nil
}

// Eventually polls cond every 10 ms until it returns nil or timeout
// passes, then fails with the last error. Tests use it only to wait for
// the outside world (a process to appear or vanish), never as a timing
// assertion: timeouts are generous because CI machines are noisy.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v: %v", timeout, err)
		}
		<-tick.C
	}
}

// WaitNanosleep waits until pid (a /bin/sleep) is blocked in its sleep.
// Right after exec the dynamic loader still holds libc open, so a test
// that reads /proc/PID/fd must wait for the program proper to run.
func WaitNanosleep(t testing.TB, pid int) {
	t.Helper()
	// A poll: nothing signals that a process has blocked in a syscall.
	Eventually(t, 10*time.Second, func() error {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), "nanosleep") {
			return fmt.Errorf("pid %d waits in %q, not yet in its sleep", pid, b)
		}
		return nil
	})
}

// DirNames lists the names in dir, sorted: what a test expects a
// directory to hold, and nothing else.
func DirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// CopyFile copies from to a new file to with mode, whatever the umask.
// Tests use it to put a binary where a test user can exec it, or to make
// a copy with its own owner and mode bits.
func CopyFile(t testing.TB, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	// The umask of the test may have narrowed mode.
	if err := os.Chmod(to, mode); err != nil {
		t.Fatal(err)
	}
}

// CopyTestBinary copies the running test binary into a fresh RunDir and
// returns the copy's path: a test user cannot exec the original, which
// go test keeps under a 0700 directory.
func CopyTestBinary(t testing.TB) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(RunDir(t), filepath.Base(self))
	CopyFile(t, self, bin, 0o755)
	return bin
}

// FillBacklog connects to the listening Unix stream socket at path,
// which must accept nothing meanwhile, until its backlog is full: the
// next connect would fail with EAGAIN. The queued connections are closed
// when the test ends.
func FillBacklog(t testing.TB, path string) {
	t.Helper()
	for i := 0; ; i++ {
		c, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = unix.Connect(c, &unix.SockaddrUnix{Name: path})
		if err == unix.EAGAIN {
			unix.Close(c)
			return
		}
		if err != nil || i > 1000 {
			unix.Close(c)
			t.Fatalf("filling the backlog of %s: connect #%d: %v", path, i, err)
		}
		t.Cleanup(func() { unix.Close(c) })
	}
}

// PidfdID is the inode id of a pidfd of pid, what LISTEN_PIDFDID names
// on a kernel with pidfs (Linux 6.9 and later, as these machines have).
func PidfdID(t testing.TB, pid int) string {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return strconv.FormatUint(st.Ino, 10)
}

// Birth identifies the file at path by inode and birth time: an inode
// number alone comes back at once after unlink and bind (SECURITY-NOTES
// 0.13), so a socket re-created at the same name would look the same.
func Birth(t testing.TB, path string) string {
	t.Helper()
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_INO|unix.STATX_BTIME, &stx); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("inode %d born %d.%09d", stx.Ino, stx.Btime.Sec, stx.Btime.Nsec)
}
