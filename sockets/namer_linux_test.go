// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// sockName is the name the kernel gives an app that asks its inherited
// socket (getsockname), as Puma and nginx do.
func sockName(t *testing.T, l *Listener) string {
	t.Helper()
	sa, err := unix.Getsockname(int(l.File().Fd()))
	if err != nil {
		t.Fatal(err)
	}
	return sa.(*unix.SockaddrUnix).Name
}

// The socket's name is its configured path: when the name is free, when
// a stale socket is replaced, and after Rebind. Nothing of the staging
// is left, and the process's own mounts are untouched.
func TestSocketNameIsTheConfiguredPath(t *testing.T) {
	testutil.RequireRoot(t)
	mounts := func() string {
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	before := mounts()
	base := testutil.RunDir(t)
	p := filepath.Join(base, "deep", "er", "api.sock")

	l := bindT(t, newBinder(), Spec{Path: p, Mode: 0o660, DirMode: 0o755, Backlog: 8})
	if got := sockName(t, l); got != p {
		t.Errorf("free name: getsockname = %q, want %q", got, p)
	}
	poison(t, l)
	if err := l.Rebind(); err != nil {
		t.Fatal(err)
	}
	if got := sockName(t, l); got != p {
		t.Errorf("after Rebind: getsockname = %q, want %q", got, p)
	}
	wantEntries(t, filepath.Dir(p), "api.sock", ".api.sock.udsvisor")
	l.Close()

	// A stale socket at the path: replaced by a rename, same name.
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	stale := rawSocket(t, p, unix.SOCK_STREAM, false)
	unix.Close(stale)
	l = bindT(t, newBinder(), Spec{Path: p, Mode: 0o660, DirMode: 0o755, Backlog: 8})
	if got := sockName(t, l); got != p {
		t.Errorf("over a stale socket: getsockname = %q, want %q", got, p)
	}
	wantEntries(t, filepath.Dir(p), "api.sock", ".api.sock.udsvisor")
	if c, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
		t.Fatal(err)
	} else if err := unix.Connect(c, &unix.SockaddrUnix{Name: p}); err != nil {
		t.Errorf("connect %s: %v", p, err)
	} else {
		unix.Close(c)
	}
	l.Close()

	if after := mounts(); after != before {
		t.Errorf("the process's mounts changed:\n%s\nbecame\n%s", before, after)
	}
	if wd, err := os.Getwd(); err != nil || !strings.HasPrefix(wd, "/") {
		t.Errorf("working directory %q, %v", wd, err)
	}
}

// Where the configured path cannot be the name (longer than sun_path, or
// the namer turned off as without CAP_SYS_ADMIN), the name is the
// /proc/thread-self/fd route the README documents, and the socket works.
func TestSocketNameFallback(t *testing.T) {
	testutil.RequireRoot(t)
	base := testutil.RunDir(t)
	long := filepath.Join(base, strings.Repeat("d", 100), "api.sock")
	off := newBinder()
	off.namer = nil
	for _, tc := range []struct {
		name string
		b    *binder
		path string
	}{
		{"path longer than sun_path", newBinder(), long},
		{"namer off", off, filepath.Join(base, "short", "api.sock")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := bindT(t, tc.b, Spec{Path: tc.path, Mode: 0o600, DirMode: 0o755, Backlog: 1})
			defer l.Close()
			if got := sockName(t, l); !strings.HasPrefix(got, "/proc/thread-self/fd/") {
				t.Errorf("getsockname = %q, want the /proc/thread-self/fd route", got)
			}
			wantEntries(t, filepath.Dir(tc.path), "api.sock", ".api.sock.udsvisor")
		})
	}
}
