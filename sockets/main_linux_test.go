// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// helperEnv switches the test binary into a tiny connect client, run as a
// test user to read the kernel's verdict on the socket's permissions.
const helperEnv = "UDSV_SOCKETS_HELPER_CONNECT"

// Exit codes of the connect helper.
const (
	helperOK     = 0
	helperEACCES = 13
	helperOther  = 1
)

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		os.Exit(connectHelper(path))
	}
	// Bind relies on the umask that `udsvisor up` sets once at start-up.
	unix.Umask(0o077)
	os.Exit(m.Run())
}

func connectHelper(path string) int {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return helperOther
	}
	err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
	switch {
	case err == nil:
		return helperOK
	case err == unix.EACCES:
		return helperEACCES
	default:
		fmt.Fprintln(os.Stderr, err)
		return helperOther
	}
}

// connectAs tries to connect to path as user u (with no supplementary
// groups) and returns the helper's exit code.
func connectAs(t *testing.T, bin string, u testutil.User, path string) int {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = []string{helperEnv + "=" + path}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{}},
	}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return helperOK
	case errors.As(err, &ee):
		if ee.ExitCode() == helperOther {
			t.Logf("connect as %s: %s", u.Name, out)
		}
		return ee.ExitCode()
	default:
		t.Fatalf("run helper as %s: %v: %s", u.Name, err, out)
		return -1
	}
}

// lstat returns the kernel's view of p without following a symlink.
func lstat(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

// wantNode checks type, owner, group and all mode bits of p on disk.
func wantNode(t *testing.T, p string, kind uint32, uid, gid int, perm fs.FileMode) {
	t.Helper()
	st := lstat(t, p)
	if st.Mode&unix.S_IFMT != kind || st.Mode&0o7777 != uint32(perm) || int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("%s: type %#o mode %04o owner %d:%d, want type %#o mode %04o owner %d:%d",
			p, st.Mode&unix.S_IFMT, st.Mode&0o7777, st.Uid, st.Gid, kind, uint32(perm), uid, gid)
	}
}

func wantGone(t *testing.T, p string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != unix.ENOENT {
		t.Errorf("%s: lstat gives %v, want it gone", p, err)
	}
}

func wantEntries(t *testing.T, dir string, want ...string) {
	t.Helper()
	got := testutil.DirNames(t, dir)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s holds %q, want %q", dir, got, want)
	}
}

// snapshot describes every file under dir (type, mode, owner, size,
// content hash, link target), so a test can show that it is untouched.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %#o %d:%d %d nlink=%d", p, st.Mode, st.Uid, st.Gid, st.Size, st.Nlink)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %x", sha256.Sum256(data))
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " -> %s", target)
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// canary makes a directory with a file in it, for symlinks to point at.
func canary(t *testing.T, base string) string {
	t.Helper()
	dir := filepath.Join(base, "canary")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("do not touch\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// mkdir makes dir with exactly mode and owner.
func mkdir(t *testing.T, dir string, uid, gid int, mode fs.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	// os.Chmod maps fs.ModeSticky; pass raw bits through unix instead.
	if err := unix.Chmod(dir, uint32(mode)); err != nil {
		t.Fatal(err)
	}
}

// bindT binds spec with b and closes the listener at the end of the test.
func bindT(t *testing.T, b *binder, spec Spec) *Listener {
	t.Helper()
	l, err := b.bind(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// rawSocket binds a Unix socket of type typ at p; listen says whether it
// listens. The caller closes the fd to make the socket stale.
func rawSocket(t *testing.T, p string, typ int, listen bool) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: p}); err != nil {
		t.Fatal(err)
	}
	if listen {
		if err := unix.Listen(fd, 16); err != nil {
			t.Fatal(err)
		}
	}
	return fd
}

// dial connects to the Unix socket at p, failing the test if it cannot.
func dial(t *testing.T, p string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: p}); err != nil {
		t.Fatalf("connect %s: %v", p, err)
	}
}

// watchName lstats p in a loop until the returned function is called,
// which then fails the test if p was ever missing.
func watchName(t *testing.T, p string) func() {
	t.Helper()
	stop := make(chan struct{})
	// Buffered so the watcher can report and exit even if the test has
	// already failed and stopped reading.
	result := make(chan error, 1)
	go func() {
		var st unix.Stat_t
		for n := 0; ; n++ {
			select {
			case <-stop:
				result <- nil
				return
			default:
			}
			if err := unix.Lstat(p, &st); err != nil {
				result <- fmt.Errorf("lstat #%d: %w", n, err)
				return
			}
		}
	}()
	return func() {
		t.Helper()
		close(stop)
		if err := <-result; err != nil {
			t.Errorf("the name went missing: %v", err)
		}
	}
}
