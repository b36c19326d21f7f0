// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// A watched socket's name that someone unlinks is back at once, on the
// same listener; one removed from the watch is not.
func TestNameWatchRestores(t *testing.T) {
	dir := testutil.RunDir(t)
	told := make(chan string, 4)
	w, err := NewNameWatch(func(label string, l *Listener, err error) {
		if err != nil {
			t.Errorf("restore %s: %v", label, err)
		}
		told <- label
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	a := bindT(t, newBinder(), Spec{Path: filepath.Join(dir, "app", "a.sock"), Mode: 0o600, DirMode: 0o755, Backlog: 8})
	b := bindT(t, newBinder(), Spec{Path: filepath.Join(dir, "app", "b.sock"), Mode: 0o600, DirMode: 0o755, Backlog: 8})
	for _, l := range []*Listener{a, b} {
		if err := w.Add(l, filepath.Base(l.Spec().Path)); err != nil {
			t.Fatal(err)
		}
	}
	before := inodeOf(t, a.Spec().Path)
	if err := os.Remove(a.Spec().Path); err != nil {
		t.Fatal(err)
	}
	select {
	case label := <-told:
		if label != "a.sock" {
			t.Errorf("told of %s, want a.sock", label)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the name was not restored within 10 s")
	}
	if got := inodeOf(t, a.Spec().Path); got != before {
		t.Errorf("restored name is inode %d, want %d (the same socket)", got, before)
	}
	w.Remove(b)
	if err := os.Remove(b.Spec().Path); err != nil {
		t.Fatal(err)
	}
	select {
	case label := <-told:
		t.Errorf("told of %s after it was removed from the watch", label)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := os.Lstat(b.Spec().Path); !os.IsNotExist(err) {
		t.Errorf("b.sock came back after it left the watch: %v", err)
	}
}

func inodeOf(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}
