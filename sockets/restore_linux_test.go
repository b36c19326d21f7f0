// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// A public name unlinked by an app or an operator is linked again to the
// same listening socket; a name that exists is left alone; without the
// private link there is nothing to restore from, and Restore says so.
func TestRestoreUnlinkedName(t *testing.T) {
	testutil.RequireRoot(t)
	base := testutil.RunDir(t)
	p := filepath.Join(base, "r", "a.sock")
	l := bindT(t, newBinder(), Spec{Path: p, Mode: 0o660, DirMode: 0o755, Backlog: 8})
	dev, ino := l.inode()

	if ok, err := l.Restore(); ok || err != nil {
		t.Fatalf("Restore with the name in place: %v %v", ok, err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if ok, err := l.Restore(); !ok || err != nil {
		t.Fatalf("Restore after rm: %v %v", ok, err)
	}
	st := lstat(t, p)
	if st.Dev != dev || st.Ino != ino || st.Mode&0o777 != 0o660 {
		t.Errorf("restored name is %d/%d %o, want the bound socket %d/%d 0660", st.Dev, st.Ino, st.Mode, dev, ino)
	}
	dial(t, p)

	// Something else took the name: it is not touched.
	os.Remove(p)
	if err := os.WriteFile(p, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, err := l.Restore(); ok || err != nil {
		t.Errorf("Restore over another file: %v %v", ok, err)
	}
	if b, _ := os.ReadFile(p); string(b) != "mine" {
		t.Errorf("the other file became %q", b)
	}

	os.Remove(p)
	os.Remove(filepath.Join(filepath.Dir(p), ".a.sock.udsvisor"))
	if ok, err := l.Restore(); ok || err == nil || !strings.Contains(err.Error(), "private link") {
		t.Errorf("Restore without the private link: %v %v", ok, err)
	}
}

// T30: the private name of a socket replaces only a leftover (a socket
// nobody listens on), never another live socket or a file there; the
// bind fails and leaves both the name and the other socket as they were.
func TestT30PrivateNameReplacesOnlyStale(t *testing.T) {
	testutil.RequireRoot(t)
	dir := filepath.Join(testutil.RunDir(t), "p")
	mkdir(t, dir, 0, 0, 0o755)
	p := filepath.Join(dir, "web.sock")
	priv := filepath.Join(dir, ".web.sock.udsvisor")
	spec := Spec{Path: p, Mode: 0o660, DirMode: 0o755, Backlog: 8}

	live := rawSocket(t, priv, unix.SOCK_STREAM, true)
	defer unix.Close(live)
	before := lstat(t, priv)
	if l, err := newBinder().bind(spec); err == nil {
		l.Close()
		t.Fatal("bind replaced a live socket at the private name")
	} else if !errors.Is(err, ErrLive) {
		t.Errorf("bind: %v, want an error wrapping ErrLive", err)
	}
	if st := lstat(t, priv); st.Ino != before.Ino {
		t.Errorf("the live socket at %s was replaced", priv)
	}
	dial(t, priv)
	wantGone(t, p)
	unix.Close(live)

	// The same name holding a stale socket, a leftover of an earlier
	// run, is replaced.
	l := bindT(t, newBinder(), spec)
	dev, ino := l.inode()
	if st := lstat(t, priv); st.Dev != dev || st.Ino != ino {
		t.Errorf("%s is not the new socket", priv)
	}
	l.Close()

	if err := os.WriteFile(priv, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if l, err := newBinder().bind(spec); err == nil {
		l.Close()
		t.Fatal("bind replaced a regular file at the private name")
	}
	if b, err := os.ReadFile(priv); err != nil || string(b) != "keep" {
		t.Errorf("the file at %s: %q %v", priv, b, err)
	}
}
