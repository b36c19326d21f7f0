// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Package sockets creates udsvisor's listening sockets: Unix sockets with
// an exact owner, group and mode, and TCP sockets on an IP literal.
//
// A Unix socket is created without ever following a symlink and without a
// moment at which its file is looser than configured (SECURITY-NOTES.md
// section 4, threats T1-T8):
//
//  1. The caller sets the process umask to 0077 once at start-up (umask is
//     shared by all threads, so Bind never changes it).
//  2. Every directory component is opened from "/" as an O_PATH fd with
//     openat2(RESOLVE_NO_SYMLINKS); existing ones must be root-owned and
//     not writable by group or others (sticky root-owned directories are
//     allowed above the socket's own directory); missing ones are made
//     root:GID with DirMode.
//  3. The socket is bound in a fresh staging directory (root, 0700) made
//     in the verified directory, under the configured path as its address
//     (see namer: the kernel resolves that path only in a private mount
//     namespace, to the staging directory's fd) or else through
//     /proc/thread-self/fd/<stage>/; then chowned and chmodded through an
//     O_PATH fd of that exact node (never through the socket fd, which
//     changes only the sockfs inode), and starts listening.
//  4. The node is linked to the final name, or renamed over a socket
//     that a non-blocking connect proved stale, so the name appears with
//     its final mode and is never missing.
//
// A child shares the open file description of its socket and can shut it
// down for everyone; Check spots that and Rebind replaces the socket by the
// same recipe, renaming the new one over the dead one.
//
// Bind knows nothing of config files: the supervisor validates its config
// and passes a Spec.
package sockets

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrLive is wrapped by the error Bind returns when another process is
// listening on the socket path, so that a caller can tell a second
// instance apart from other failures with errors.Is.
var ErrLive = errors.New("another process is listening on it")

// Spec describes one listening socket.
type Spec struct {
	Path     string         // Unix socket path (absolute, clean), or
	Addr     netip.AddrPort // a TCP address when Path is ""
	UID, GID int            // owner and group of the socket file (Unix)
	Mode     fs.FileMode    // permission bits of the socket file (Unix), e.g. 0o660
	DirMode  fs.FileMode    // for directories that Bind creates (owned root:GID)
	Backlog  int
}

// String returns the socket path, or the TCP address: how errors and logs
// refer to the socket.
func (s Spec) String() string {
	if s.Path != "" {
		return s.Path
	}
	return s.Addr.String()
}

// Listener is a bound, listening socket that udsvisor owns.
type Listener struct {
	spec Spec
	file *os.File

	// Unix sockets only; -1 otherwise. dir is the O_PATH fd of the
	// socket's directory, so that Close and SetOwner act relative to the
	// directory Bind verified instead of resolving the path again. node is
	// an O_PATH fd of the socket file itself: holding it keeps the inode
	// allocated, so its number cannot be handed to another file (ext4
	// reuses numbers at once, SECURITY-NOTES 0.13) and a dev+ino match
	// proves the name still refers to our socket.
	dir, node int
	dev, ino  uint64
	// created lists the directories Bind made, outermost first; their
	// parent fds are in fds.
	created []createdDir
	// fds are the O_PATH directory fds to close, dir among them.
	fds []int

	// mu guards file, node, dev, ino and closed, which Rebind replaces,
	// and serialises Close, SetOwner, Restore and Rebind, which the
	// supervisor may call from different goroutines (shutdown, reload and
	// the service goroutine after an exit).
	mu     sync.Mutex
	closed bool
}

// createdDir is a directory that Bind made and Close may remove.
type createdDir struct {
	parent   int // O_PATH fd of the parent directory
	name     string
	path     string
	dev, ino uint64
}

// binder holds the knobs that tests turn; Bind uses the zero value except
// for the defaults set in newBinder.
type binder struct {
	// noOpenat2 forces the openat(O_NOFOLLOW) walk used on kernels
	// without openat2 (< 5.6), so that a test exercises it.
	noOpenat2 bool
	// afterBind, when set, runs between bind(2) of the temporary name and
	// the chown/chmod of it, with the staging directory's fd and the
	// node's name in it.
	afterBind func(dirfd int, tmp string)
	// namer, when not nil, returns the namer that binds sockets under
	// their configured path; nil makes Bind bind through /proc.
	namer func() (*namer, error)
	// probeTimeout bounds the connect that tells a live socket from a
	// stale one.
	probeTimeout time.Duration
}

func newBinder() *binder {
	return &binder{probeTimeout: time.Second, namer: sharedNamer}
}

// Bind creates the socket that spec describes and starts listening on it.
// A Unix socket path must be absolute and clean; its directories are
// created as needed (root:GID, DirMode) and existing ones must be
// root-owned and not writable by group or others. A stale socket at the
// path (nobody listening) is replaced atomically; a live one, or any
// other kind of file, is left alone and reported. The process umask must
// be 0077 (see the package doc).
//
// A TCP address gets SO_REUSEADDR (never SO_REUSEPORT) and, for IPv6,
// IPV6_V6ONLY. Port 0 picks a free port, which is only useful in tests.
func Bind(spec Spec) (*Listener, error) {
	return newBinder().bind(spec)
}

func (b *binder) bind(spec Spec) (*Listener, error) {
	switch {
	case spec.Path != "" && spec.Addr.IsValid():
		return nil, fmt.Errorf("socket %s: spec has both a path and the address %s", spec.Path, spec.Addr)
	case spec.Path != "":
		if err := validateUnix(spec); err != nil {
			return nil, err
		}
		return b.bindUnix(spec)
	case spec.Addr.IsValid():
		if spec.Backlog < 0 {
			return nil, fmt.Errorf("listen %s: negative backlog %d", spec.Addr, spec.Backlog)
		}
		return bindTCP(spec)
	default:
		return nil, errors.New("socket: spec has neither a path nor an address")
	}
}

func validateUnix(spec Spec) error {
	p := spec.Path
	switch {
	case !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" || strings.ContainsRune(p, 0):
		return fmt.Errorf("socket %q: path must be absolute and clean", p)
	case spec.UID < 0 || spec.GID < 0:
		return fmt.Errorf("socket %s: owner %d:%d is not a uid:gid", p, spec.UID, spec.GID)
	case spec.Backlog < 0:
		return fmt.Errorf("socket %s: negative backlog %d", p, spec.Backlog)
	}
	if err := checkMode(spec.Mode); err != nil {
		return fmt.Errorf("socket %s: %w", p, err)
	}
	if spec.DirMode&^fs.ModePerm != 0 {
		return fmt.Errorf("socket %s: directory mode %v has bits other than permissions", p, spec.DirMode)
	}
	// Bind refuses an existing directory that others can write (T2), so it
	// must not create one either: the next socket in it would be refused.
	if spec.DirMode&0o022 != 0 {
		return fmt.Errorf("socket %s: directory mode %04o would let group or others replace the socket; refusing",
			p, uint32(spec.DirMode))
	}
	return nil
}

func checkMode(m fs.FileMode) error {
	if m&^fs.ModePerm != 0 {
		return fmt.Errorf("mode %v has bits other than permissions", m)
	}
	return nil
}

// File returns the listening socket: close-on-exec and blocking, outside
// Go's poller. The supervisor passes it to children through
// exec.Cmd.ExtraFiles, which clears close-on-exec in the child only. The
// Listener owns it: Close closes it, and Rebind replaces it, so a caller
// fetches it anew for each child rather than keeping it.
func (l *Listener) File() *os.File {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.file
}

// Spec returns the spec of the socket, with the owner and mode last set
// by SetOwner.
func (l *Listener) Spec() Spec {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.spec
}

// inode returns the device and inode numbers of the socket file that Bind
// (or the last Rebind) created; both are 0 for a TCP socket.
func (l *Listener) inode() (dev, ino uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dev, l.ino
}

// Close closes the socket and, for a Unix socket, unlinks its name only if
// the name still refers to the file Bind created, then removes the
// directories Bind created, deepest first, as long as they are empty. A
// directory shared with another socket therefore stays. Close is
// idempotent.
func (l *Listener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	if err := l.file.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		errs = append(errs, err)
	}
	if l.spec.Path != "" {
		errs = append(errs, l.closeUnix())
	}
	return errors.Join(errs...)
}

// SetBacklog changes the listen(2) backlog of the live socket in place,
// for a reload: listen on a listening socket only resizes its queue, so
// no connection waiting in it is lost. (An app that calls listen itself,
// as gunicorn does, sets its own again.)
func (l *Listener) SetBacklog(n int) error {
	return l.live(func(p string) error {
		if n < 0 {
			return fmt.Errorf("socket %s: negative backlog %d", p, n)
		}
		if err := unix.Listen(int(l.file.Fd()), n); err != nil {
			return fmt.Errorf("listen %s: %w", p, err)
		}
		l.spec.Backlog = n
		return nil
	})
}

// SetOwner re-applies owner, group and mode to the live socket file
// without rebinding, for a reload. It acts on the file Bind created, never
// on whatever the path names now, and fails for a TCP socket.
func (l *Listener) SetOwner(uid, gid int, mode fs.FileMode) error {
	return l.live(func(p string) error {
		switch {
		case l.spec.Path == "":
			return fmt.Errorf("socket %s: not a Unix socket; it has no owner or mode", p)
		case uid < 0 || gid < 0:
			return fmt.Errorf("socket %s: owner %d:%d is not a uid:gid", p, uid, gid)
		}
		if err := checkMode(mode); err != nil {
			return fmt.Errorf("socket %s: %w", p, err)
		}
		if err := l.setOwner(uid, gid, mode); err != nil {
			return err
		}
		l.spec.UID, l.spec.GID, l.spec.Mode = uid, gid, mode
		return nil
	})
}

// live runs f with l.mu held, on a socket that is not closed (else the
// error wraps os.ErrClosed). p is the socket's name for f's errors.
func (l *Listener) live(f func(p string) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.spec.String()
	if l.closed {
		return fmt.Errorf("socket %s: %w", p, os.ErrClosed)
	}
	return f(p)
}
