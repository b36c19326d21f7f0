// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// poison does what a child can do to its copy of a listening socket: the
// open file description is shared, so a shutdown through a dup of udsvisor's
// fd kills the socket for everyone.
func poison(t *testing.T, l *Listener) {
	t.Helper()
	fd, err := unix.Dup(int(l.File().Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Shutdown(fd, unix.SHUT_RDWR); err != nil {
		t.Fatal(err)
	}
}

// connectErr connects to the Unix socket at p and returns the kernel's
// verdict.
func connectErr(t *testing.T, p string) error {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	return unix.Connect(fd, &unix.SockaddrUnix{Name: p})
}

// Fault "poisoned listener": Check tells a shut-down socket from a live
// one (a pending connection included) exactly when the kernel refuses
// connects, and Rebind puts a new socket with the configured owner and
// mode at the same path without the name ever going missing.
func TestPoisonedListenerRebind(t *testing.T) {
	a := testutil.EnsureUser(t, "udsv-a")
	base := testutil.RunDir(t)
	p := filepath.Join(base, "app", "a.sock")
	priv := filepath.Join(base, "app", ".a.sock.udsvisor")
	l := bindT(t, newBinder(), Spec{Path: p, UID: int(a.UID), GID: int(a.GID), Mode: 0o640, DirMode: 0o755, Backlog: 8})

	dial(t, p) // left pending in the backlog: still healthy
	if err := l.Check(); err != nil {
		t.Fatalf("Check of a live socket: %v", err)
	}
	poison(t, l)
	if err := connectErr(t, p); err != unix.ECONNREFUSED {
		t.Fatalf("connect to the poisoned socket: %v, want ECONNREFUSED", err)
	}
	if err := l.Check(); !errors.Is(err, ErrPoisoned) {
		t.Fatalf("Check of the poisoned socket: %v, want ErrPoisoned", err)
	}

	oldFile := l.File()
	stopWatching := watchName(t, p)
	for range 50 {
		poison(t, l)
		oldDev, oldIno := l.inode()
		if err := l.Rebind(); err != nil {
			t.Fatal(err)
		}
		// The old inode is still allocated while the new one is made,
		// so their numbers differ (unlike after an unlink, SECURITY-NOTES
		// 0.13).
		if dev, ino := l.inode(); dev == oldDev && ino == oldIno {
			t.Fatalf("Rebind kept inode %d/%d", dev, ino)
		}
	}
	stopWatching()

	if l.File() == oldFile {
		t.Error("File() still returns the old socket")
	}
	if err := l.Check(); err != nil {
		t.Errorf("Check after Rebind: %v", err)
	}
	wantNode(t, p, unix.S_IFSOCK, int(a.UID), int(a.GID), 0o640)
	st := lstat(t, p)
	dev, ino := l.inode()
	if st.Dev != dev || st.Ino != ino {
		t.Errorf("path is %d/%d, want the new socket %d/%d", st.Dev, st.Ino, dev, ino)
	}
	if ps := lstat(t, priv); ps.Dev != dev || ps.Ino != ino {
		t.Errorf("private link is %d/%d, want the new socket %d/%d", ps.Dev, ps.Ino, dev, ino)
	}
	wantEntries(t, filepath.Dir(p), ".a.sock.udsvisor", "a.sock")
	// The path reaches the new listening fd: what it accepts came through
	// the name.
	dial(t, p)
	nfd, _, err := unix.Accept4(int(l.File().Fd()), unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatalf("accept on the new socket: %v", err)
	}
	unix.Close(nfd)
	// The kernel lets the configured owner in, as after a fresh Bind.
	if code := connectAs(t, testutil.CopyTestBinary(t), a, p); code != helperOK {
		t.Errorf("connect as udsv-a after Rebind: exit %d, want success", code)
	}

	// A poisoned socket whose name is gone too gets its name back.
	poison(t, l)
	if err := unix.Unlink(p); err != nil {
		t.Fatal(err)
	}
	if err := l.Rebind(); err != nil {
		t.Fatal(err)
	}
	dial(t, p)

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wantEntries(t, base)
	if err := l.Rebind(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Rebind after Close: %v", err)
	}
}

// A TCP listener that a child shut down stops listening; Rebind listens
// on the same address and port again.
func TestPoisonedTCPRebind(t *testing.T) {
	testutil.RequireRoot(t)
	l := bindT(t, newBinder(), Spec{Addr: mustAddrPort(t, "127.0.0.1:0"), Backlog: 8})
	addr := sockname(t, int(l.File().Fd()))
	if err := l.Check(); err != nil {
		t.Fatalf("Check of a live socket: %v", err)
	}
	poison(t, l)
	if c, err := net.Dial("tcp", addr.String()); err == nil {
		c.Close()
		t.Fatal("the poisoned TCP socket accepted a connection")
	}
	if err := l.Check(); !errors.Is(err, ErrPoisoned) {
		t.Fatalf("Check of the poisoned socket: %v, want ErrPoisoned", err)
	}
	if err := l.Rebind(); err != nil {
		t.Fatal(err)
	}
	if got := sockname(t, int(l.File().Fd())); got != addr {
		t.Errorf("rebound to %s, want %s", got, addr)
	}
	if err := l.Check(); err != nil {
		t.Errorf("Check after Rebind: %v", err)
	}
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatalf("dial after Rebind: %v", err)
	}
	c.Close()
	// A live socket holds its port: Rebind fails and keeps it.
	if err := l.Rebind(); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("Rebind of a live TCP socket: %v, want EADDRINUSE", err)
	}
	if err := l.Check(); err != nil {
		t.Errorf("Check after a failed Rebind: %v", err)
	}
}
