// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

func TestT5BindModesAndOwners(t *testing.T) {
	a := testutil.EnsureUser(t, "udsv-a")
	group := int(testutil.EnsureGroup(t, "udsv-sock"))
	owners := []struct {
		name     string
		uid, gid int
	}{
		{"root:udsv-sock", 0, group},
		{"udsv-a:udsv-a", int(a.UID), int(a.GID)},
	}
	for _, o := range owners {
		for _, mode := range []fs.FileMode{0o600, 0o660, 0o666, 0o770} {
			t.Run(fmt.Sprintf("%s/%04o", o.name, uint32(mode)), func(t *testing.T) {
				base := testutil.RunDir(t)
				p := filepath.Join(base, "app", "sub", "a.sock")
				l := bindT(t, newBinder(), Spec{Path: p, UID: o.uid, GID: o.gid, Mode: mode, DirMode: 0o750, Backlog: 16})

				wantNode(t, p, unix.S_IFSOCK, o.uid, o.gid, mode)
				wantNode(t, filepath.Join(base, "app"), unix.S_IFDIR, 0, o.gid, 0o750)
				wantNode(t, filepath.Join(base, "app", "sub"), unix.S_IFDIR, 0, o.gid, 0o750)
				wantEntries(t, filepath.Dir(p), ".a.sock.udsvisor", "a.sock")
				st := lstat(t, p)
				if dev, ino := l.inode(); dev != st.Dev || ino != st.Ino {
					t.Errorf("inode() = %d,%d; lstat says %d,%d", dev, ino, st.Dev, st.Ino)
				}
				dial(t, p)

				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				wantGone(t, p)
				wantGone(t, filepath.Join(base, "app"))
				wantEntries(t, base)
			})
		}
	}
}

// The kernel, not Bind, has the last word on who may connect.
func TestBindPermissionsEnforced(t *testing.T) {
	a := testutil.EnsureUser(t, "udsv-a")
	group := int(testutil.EnsureGroup(t, "udsv-sock"))
	bin := testutil.CopyTestBinary(t)
	base := testutil.RunDir(t)
	p := filepath.Join(base, "app", "a.sock")
	l := bindT(t, newBinder(), Spec{Path: p, UID: 0, GID: group, Mode: 0o660, DirMode: 0o755, Backlog: 16})

	if got := connectAs(t, bin, a, p); got != helperEACCES {
		t.Errorf("udsv-a outside the group: helper exit %d, want %d (EACCES)", got, helperEACCES)
	}
	if err := l.SetOwner(0, int(a.GID), 0o660); err != nil {
		t.Fatal(err)
	}
	if got := connectAs(t, bin, a, p); got != helperOK {
		t.Errorf("udsv-a in the group: helper exit %d, want 0", got)
	}
	if err := l.SetOwner(int(a.UID), group, 0o060); err != nil {
		t.Fatal(err)
	}
	if got := connectAs(t, bin, a, p); got != helperEACCES {
		t.Errorf("owner without permission bits: helper exit %d, want %d (EACCES)", got, helperEACCES)
	}
	if err := l.SetOwner(0, 0, 0o666); err != nil {
		t.Fatal(err)
	}
	if got := connectAs(t, bin, a, p); got != helperOK {
		t.Errorf("mode 0666: helper exit %d, want 0", got)
	}
}

func TestT5SetOwner(t *testing.T) {
	a := testutil.EnsureUser(t, "udsv-a")
	base := testutil.RunDir(t)
	p := filepath.Join(base, "a.sock")
	l := bindT(t, newBinder(), Spec{Path: p, Mode: 0o600, Backlog: 1})
	dev, ino := l.inode()

	if err := l.SetOwner(int(a.UID), int(a.GID), 0o640); err != nil {
		t.Fatal(err)
	}
	wantNode(t, p, unix.S_IFSOCK, int(a.UID), int(a.GID), 0o640)
	if st := lstat(t, p); st.Dev != dev || st.Ino != ino {
		t.Errorf("SetOwner re-created the socket: inode %d, was %d", st.Ino, ino)
	}
	if s := l.Spec(); s.UID != int(a.UID) || s.GID != int(a.GID) || s.Mode != 0o640 {
		t.Errorf("Spec() = %+v, want the new owner and mode", s)
	}
	dial(t, p)

	if err := l.SetOwner(0, 0, fs.ModeSetuid|0o600); err == nil {
		t.Error("SetOwner accepted a setuid bit")
	}
	if err := l.SetOwner(-1, 0, 0o600); err == nil {
		t.Error("SetOwner accepted uid -1")
	}
	wantNode(t, p, unix.S_IFSOCK, int(a.UID), int(a.GID), 0o640)

	l.Close()
	if err := l.SetOwner(0, 0, 0o600); err == nil {
		t.Error("SetOwner after Close succeeded")
	}
}

func TestCloseRemovesOnlyWhatBindCreated(t *testing.T) {
	testutil.RequireRoot(t)
	spec := func(p string) Spec { return Spec{Path: p, Mode: 0o600, DirMode: 0o755, Backlog: 1} }

	t.Run("name replaced", func(t *testing.T) {
		base := testutil.RunDir(t)
		p := filepath.Join(base, "c", "a.sock")
		l := bindT(t, newBinder(), spec(p))
		other := filepath.Join(base, "other")
		if err := os.WriteFile(other, []byte("someone else's\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(other, p); err != nil {
			t.Fatal(err)
		}
		// Close removes its own private link (.a.sock.udsvisor) and
		// nothing else.
		before := withoutLine(snapshot(t, base), ".a.sock.udsvisor")
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if after := snapshot(t, base); after != before {
			t.Errorf("Close touched a file it did not create:\n%s\nbecame\n%s", before, after)
		}
	})

	t.Run("extra file in a created directory", func(t *testing.T) {
		base := testutil.RunDir(t)
		p := filepath.Join(base, "d", "e", "a.sock")
		l := bindT(t, newBinder(), spec(p))
		if err := os.WriteFile(filepath.Join(base, "d", "keep"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		wantEntries(t, filepath.Join(base, "d"), "keep")
	})

	t.Run("shared directory", func(t *testing.T) {
		base := testutil.RunDir(t)
		first := bindT(t, newBinder(), spec(filepath.Join(base, "s", "a.sock")))
		// The directory the first Bind made passes the checks of the
		// second one.
		second := bindT(t, newBinder(), spec(filepath.Join(base, "s", "b.sock")))
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}
		wantEntries(t, filepath.Join(base, "s"), ".b.sock.udsvisor", "b.sock")
		dial(t, filepath.Join(base, "s", "b.sock"))
		if err := second.Close(); err != nil {
			t.Fatal(err)
		}
		// Only the Bind that created a directory removes it.
		wantEntries(t, filepath.Join(base, "s"))
	})

	t.Run("idempotent", func(t *testing.T) {
		base := testutil.RunDir(t)
		l := bindT(t, newBinder(), spec(filepath.Join(base, "x", "a.sock")))
		for i := range 2 {
			if err := l.Close(); err != nil {
				t.Fatalf("Close #%d: %v", i+1, err)
			}
		}
		wantEntries(t, base)
	})
}

// File is what the supervisor hands to children, so its flags matter:
// close-on-exec in udsvisor, blocking for the child. Every other fd a
// Listener holds is close-on-exec too (T10), and Close releases them all.
func TestT10FileFlagsAndFDs(t *testing.T) {
	testutil.RequireRoot(t)
	before := openFDs(t)
	base := testutil.RunDir(t)
	l := bindT(t, newBinder(), Spec{Path: filepath.Join(base, "app", "a.sock"), Mode: 0o600, DirMode: 0o755, Backlog: 1})
	wantBlockingCloexec(t, int(l.File().Fd()))
	held := 0
	for fd := range openFDs(t) {
		if before[fd] {
			continue
		}
		held++
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			t.Fatal(err)
		}
		if flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("fd %d held by the listener is not close-on-exec", fd)
		}
	}
	if held == 0 {
		t.Error("found no fds held by the listener")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for fd := range openFDs(t) {
		if !before[fd] {
			target, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
			t.Errorf("fd %d (%s) still open after Close", fd, target)
		}
	}
}

func wantBlockingCloexec(t *testing.T, fd int) {
	t.Helper()
	fdFlags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fdFlags&unix.FD_CLOEXEC == 0 {
		t.Errorf("fd %d is not close-on-exec", fd)
	}
	flFlags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flFlags&unix.O_NONBLOCK != 0 {
		t.Errorf("fd %d is non-blocking", fd)
	}
}

func openFDs(t *testing.T) map[int]bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	fds := make(map[int]bool)
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// The fd ReadDir used is closed by now; skip it if it shows.
		if _, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			fds[fd] = true
		}
	}
	return fds
}

// A path at the sun_path limit binds and serves; a longer one binds too,
// because Bind goes through /proc/self/fd (clients then need the same
// trick, which is why config caps paths at 107 bytes).
func TestLongPaths(t *testing.T) {
	testutil.RequireRoot(t)
	base := testutil.RunDir(t)

	p := filepath.Join(base, strings.Repeat("n", maxSunPath-len(base)-1))
	if len(p) != maxSunPath {
		t.Fatalf("test path is %d bytes", len(p))
	}
	bindT(t, newBinder(), Spec{Path: p, Mode: 0o660, Backlog: 1})
	wantNode(t, p, unix.S_IFSOCK, 0, 0, 0o660)
	conn, err := net.Dial("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()

	deep := filepath.Join(base, strings.Repeat("d", 100), strings.Repeat("e", 100), "a.sock")
	bindT(t, newBinder(), Spec{Path: deep, Mode: 0o660, DirMode: 0o755, Backlog: 1})
	wantNode(t, deep, unix.S_IFSOCK, 0, 0, 0o660)
	wantEntries(t, filepath.Dir(deep), ".a.sock.udsvisor", "a.sock")
	fd, err := unix.Open(deep, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	dial(t, "/proc/self/fd/"+strconv.Itoa(fd))
}

func TestBindRejectsBadSpecs(t *testing.T) {
	testutil.RequireRoot(t)
	base := testutil.RunDir(t)
	p := filepath.Join(base, "app", "a.sock")
	for _, tc := range []struct {
		name string
		spec Spec
	}{
		{"relative", Spec{Path: "run/a.sock", Mode: 0o600}},
		{"T9 abstract", Spec{Path: "@api", Mode: 0o600}},
		{"T9 abstract NUL", Spec{Path: "\x00api", Mode: 0o600}},
		{"unclean", Spec{Path: base + "/app/../a.sock", Mode: 0o600}},
		{"trailing slash", Spec{Path: p + "/", Mode: 0o600}},
		{"root", Spec{Path: "/", Mode: 0o600}},
		{"neither", Spec{Mode: 0o600}},
		{"both", Spec{Path: p, Addr: mustAddrPort(t, "127.0.0.1:0"), Mode: 0o600}},
		{"setuid mode", Spec{Path: p, Mode: fs.ModeSetuid | 0o600}},
		{"group-writable dirs", Spec{Path: p, Mode: 0o600, DirMode: 0o775}},
		{"sticky dirs", Spec{Path: p, Mode: 0o600, DirMode: fs.ModeSticky | 0o755}},
		{"negative uid", Spec{Path: p, UID: -1, Mode: 0o600}},
		{"negative backlog", Spec{Path: p, Mode: 0o600, Backlog: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if l, err := Bind(tc.spec); err == nil {
				l.Close()
				t.Fatalf("Bind(%+v) succeeded", tc.spec)
			} else {
				t.Log(err)
			}
			wantEntries(t, base)
		})
	}
}

// withoutLine drops the lines of a snapshot that contain substr.
func withoutLine(snap, substr string) string {
	var keep []string
	for _, line := range strings.Split(snap, "\n") {
		if !strings.Contains(line, substr) {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}
