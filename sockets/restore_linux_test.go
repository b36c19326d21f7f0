package sockets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	dev, ino := l.Inode()

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
