// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// walkers are the two ways of opening directories: openat2 and the
// openat(O_NOFOLLOW) fallback for kernels before 5.6.
var walkers = []struct {
	name   string
	binder func() *binder
}{
	{"openat2", newBinder},
	{"openat", func() *binder { b := newBinder(); b.noOpenat2 = true; return b }},
	{"bind through /proc", func() *binder { b := newBinder(); b.namer = nil; return b }},
}

// T1: a symlink in a parent component is refused by name, and nothing is
// created or changed where it points.
func TestT1SymlinkInParentRefused(t *testing.T) {
	testutil.RequireRoot(t)
	for _, w := range walkers {
		for _, tc := range []struct {
			name string
			// link is the symlink under base, sock the socket path below it.
			link, sock string
		}{
			{"socket directory", "link", "link/a.sock"},
			{"middle", "link", "link/sub/a.sock"},
			{"deeper", "real/link", "real/link/sub/a.sock"},
		} {
			t.Run(w.name+"/"+tc.name, func(t *testing.T) {
				base := testutil.RunDir(t)
				mkdir(t, filepath.Join(base, "real"), 0, 0, 0o755)
				victim := canary(t, base)
				link := filepath.Join(base, tc.link)
				if err := os.Symlink(victim, link); err != nil {
					t.Fatal(err)
				}
				before := snapshot(t, base)

				_, err := w.binder().bind(Spec{Path: filepath.Join(base, tc.sock), Mode: 0o666, DirMode: 0o755, Backlog: 1})
				want := link + ": is a symlink; refusing to follow it"
				if err == nil || err.Error() != want {
					t.Fatalf("Bind error %v, want %q", err, want)
				}
				if after := snapshot(t, base); after != before {
					t.Errorf("Bind changed files:\n%s\nbecame\n%s", before, after)
				}
			})
		}
	}
}

// T2: an existing directory that someone other than root can write is
// refused, naming its owner and mode, and nothing is created in it.
func TestT2UnsafeDirectoryRefused(t *testing.T) {
	a := testutil.EnsureUser(t, "udsv-a")
	uidA, gidA := int(a.UID), int(a.GID)
	for _, tc := range []struct {
		name     string
		uid, gid int
		mode     uint32 // raw bits, so that sticky is 0o1000
		deeper   bool   // the directory is above the socket's own one
		ok       bool
	}{
		{"owned by udsv-a", uidA, gidA, 0o755, false, false},
		{"world-writable", 0, 0, 0o777, false, false},
		{"group-writable", 0, gidA, 0o775, false, false},
		{"sticky socket directory", 0, 0, 0o1777, false, false},
		{"sticky root-owned parent", 0, 0, 0o1777, true, true},
		{"sticky parent owned by udsv-a", uidA, gidA, 0o1777, true, false},
		{"parent owned by udsv-a", uidA, gidA, 0o755, true, false},
		{"group-writable parent", 0, gidA, 0o775, true, false},
		{"root 0750", 0, gidA, 0o750, false, true},
	} {
		for _, w := range walkers {
			t.Run(w.name+"/"+tc.name, func(t *testing.T) {
				base := testutil.RunDir(t)
				dir := filepath.Join(base, "app")
				mkdir(t, dir, tc.uid, tc.gid, fs.FileMode(tc.mode))
				p := filepath.Join(dir, "a.sock")
				if tc.deeper {
					p = filepath.Join(dir, "sub", "a.sock")
				}
				l, err := w.binder().bind(Spec{Path: p, Mode: 0o660, DirMode: 0o755, Backlog: 1})
				if tc.ok {
					if err != nil {
						t.Fatal(err)
					}
					wantNode(t, p, unix.S_IFSOCK, 0, 0, 0o660)
					l.Close()
					wantEntries(t, dir)
					return
				}
				want := fmt.Sprintf("directory %s is owned by uid %d, mode %04o; refusing", dir, tc.uid, tc.mode)
				if err == nil {
					l.Close()
					t.Fatalf("Bind succeeded, want %q", want)
				}
				if err.Error() != want {
					t.Errorf("Bind error %q, want %q", err, want)
				}
				wantEntries(t, dir)
				wantNode(t, dir, unix.S_IFDIR, tc.uid, tc.gid, fs.FileMode(tc.mode))
			})
		}
	}
}

// T4: the temporary node is never looser than the configured mode, under
// the umask 0077 that udsvisor sets and even under umask 000.
func TestT4TempNodeNeverLooser(t *testing.T) {
	testutil.RequireRoot(t)
	for _, umask := range []int{0o077, 0} {
		for _, mode := range []fs.FileMode{0o600, 0o660, 0o666} {
			t.Run(fmt.Sprintf("umask %03o/mode %04o", umask, uint32(mode)), func(t *testing.T) {
				old := unix.Umask(umask)
				defer unix.Umask(old)
				base := testutil.RunDir(t)
				p := filepath.Join(base, "app", "a.sock")
				b := newBinder()
				seen := false
				b.afterBind = func(dirfd int, tmp string) {
					seen = true
					var st unix.Stat_t
					if err := unix.Fstatat(dirfd, tmp, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
						t.Errorf("lstat temporary node: %v", err)
						return
					}
					if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
						t.Errorf("temporary node has type %#o", st.Mode&unix.S_IFMT)
					}
					if perm := st.Mode & 0o7777; perm&^uint32(mode) != 0 || perm&^0o600 != 0 {
						t.Errorf("temporary node born %04o; configured %04o", perm, uint32(mode))
					}
				}
				bindT(t, b, Spec{Path: p, Mode: mode, DirMode: 0o755, Backlog: 1})
				if !seen {
					t.Fatal("the hook never ran")
				}
				wantNode(t, p, unix.S_IFSOCK, 0, 0, mode)
				wantNode(t, filepath.Dir(p), unix.S_IFDIR, 0, 0, 0o755)
				wantEntries(t, filepath.Dir(p), ".a.sock.udsvisor", "a.sock")
			})
		}
	}
}

// T3 and T6: whatever replaces the temporary name between bind and chown,
// a symlink or a hard link to another file or socket, is refused and never
// chowned.
func TestT3T6TempNodeSwapRefused(t *testing.T) {
	a := testutil.EnsureUser(t, "udsv-a")
	relink := func(link func(target string, dirfd int, tmp string) error) func(*testing.T, int, string, string) {
		return func(t *testing.T, dirfd int, tmp, target string) {
			if err := unix.Unlinkat(dirfd, tmp, 0); err != nil {
				t.Fatal(err)
			}
			if err := link(target, dirfd, tmp); err != nil {
				t.Fatal(err)
			}
		}
	}
	symlink := relink(unix.Symlinkat)
	hardlink := relink(func(target string, dirfd int, tmp string) error {
		return unix.Linkat(unix.AT_FDCWD, target, dirfd, tmp, 0)
	})
	for _, tc := range []struct {
		name   string
		target string // in the canary directory
		swap   func(t *testing.T, dirfd int, tmp, target string)
		want   string
	}{
		{"symlink", "secret", symlink, "replaced by a symlink"},
		{"hard link to a file", "secret", hardlink, "replaced by a regular file with 2 links"},
		{"hard link to another socket", "other.sock", hardlink, "replaced by a socket with 2 links"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := testutil.RunDir(t)
			victim := canary(t, base)
			other := rawSocket(t, filepath.Join(victim, "other.sock"), unix.SOCK_STREAM, true)
			defer unix.Close(other)
			before := snapshot(t, victim)
			b := newBinder()
			b.afterBind = func(dirfd int, tmp string) { tc.swap(t, dirfd, tmp, filepath.Join(victim, tc.target)) }
			p := filepath.Join(base, "a.sock")
			l, err := b.bind(Spec{Path: p, UID: int(a.UID), GID: int(a.GID), Mode: 0o666, Backlog: 1})
			if err == nil {
				l.Close()
				t.Fatal("Bind succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Bind error %q, want it to say %q", err, tc.want)
			}
			wantEntries(t, base, "canary")
			if after := snapshot(t, victim); after != before {
				t.Errorf("the target changed:\n%s\nbecame\n%s", before, after)
			}
		})
	}
}

// T1, race: while a loop swaps a real directory and a symlink to a canary
// with RENAME_EXCHANGE, Bind either works in the real directory or
// refuses; the canary never changes.
func TestT1SymlinkSwapRace(t *testing.T) {
	a := testutil.EnsureUser(t, "udsv-a")
	for _, w := range walkers {
		t.Run(w.name, func(t *testing.T) {
			base := testutil.RunDir(t)
			victim := canary(t, base)
			app, swap := filepath.Join(base, "app"), filepath.Join(base, "swap")
			mkdir(t, app, 0, 0, 0o755)
			if err := os.Symlink(victim, swap); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, victim)

			stop := make(chan struct{})
			// Buffered so the swapper can exit without a reader.
			done := make(chan error, 1)
			go func() {
				for {
					select {
					case <-stop:
						done <- nil
						return
					default:
					}
					if err := unix.Renameat2(unix.AT_FDCWD, app, unix.AT_FDCWD, swap, unix.RENAME_EXCHANGE); err != nil {
						done <- err
						return
					}
				}
			}()
			spec := Spec{Path: filepath.Join(app, "sub", "a.sock"), UID: int(a.UID), GID: int(a.GID), Mode: 0o666, DirMode: 0o755, Backlog: 1}
			var ok, refused int
			for range 1000 {
				l, err := w.binder().bind(spec)
				if err != nil {
					if !strings.Contains(err.Error(), "is a symlink; refusing to follow it") &&
						!strings.Contains(err.Error(), "changed while being opened") {
						t.Errorf("Bind: %v", err)
					}
					refused++
					continue
				}
				ok++
				if err := l.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
			close(stop)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			t.Logf("%d binds, %d refusals", ok, refused)
			if after := snapshot(t, victim); after != before {
				t.Errorf("the canary changed:\n%s\nbecame\n%s", before, after)
			}
		})
	}
}
