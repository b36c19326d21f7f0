// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// privateName is the second name Bind gives every Unix socket, next to
// the public one: ".NAME.udsvisor". It keeps the inode linked when the
// public name is unlinked, so that Restore can link the public name again.
// An app that unlinks its socket path when it stops (gunicorn does, unless
// LISTEN_PID names it; SECURITY-NOTES 0.11) or an operator's rm would
// otherwise leave a listening socket nobody can reach.
func privateName(name string) string { return "." + name + ".udsvisor" }

// linkPrivate gives the published socket node its private name. Only a
// leftover of an earlier run is replaced there: a socket nobody listens
// on. Anything else at that name (another socket that is live, a file)
// is left alone and the bind fails (T30); config validation already
// refuses socket paths of that form.
func (b *binder) linkPrivate(node, dirfd int, name, path string) error {
	priv := privateName(name)
	privPath := filepath.Join(filepath.Dir(path), priv)
	if err := b.probe(dirfd, priv, privPath); err != nil && err != errVanished {
		return fmt.Errorf("socket %s: its private name: %w", path, err)
	}
	tmp := tempName(name)
	// AT_EMPTY_PATH links the very inode node refers to; it needs
	// CAP_DAC_READ_SEARCH, which root has.
	if err := unix.Linkat(node, "", dirfd, tmp, unix.AT_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "link", Path: filepath.Join(filepath.Dir(path), tmp), Err: err}
	}
	if err := unix.Renameat(dirfd, tmp, dirfd, priv); err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		return &os.PathError{Op: "rename", Path: privPath, Err: err}
	}
	return nil
}

// Restore links the socket's public name again if it was unlinked, and
// reports whether it did. The socket never stopped listening, so the
// restored name reaches the same listener and the connections queued on
// it. A name that exists, whatever it now is, is left alone. TCP sockets
// have no name and are never restored.
func (l *Listener) Restore() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.spec.Path == "" {
		return false, nil
	}
	name := filepath.Base(l.spec.Path)
	var st unix.Stat_t
	err := unix.Fstatat(l.dir, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == nil:
		return false, nil
	case err != unix.ENOENT:
		return false, &os.PathError{Op: "stat", Path: l.spec.Path, Err: err}
	}
	err = unix.Linkat(l.node, "", l.dir, name, unix.AT_EMPTY_PATH)
	switch {
	case err == nil:
		return true, nil
	case err == unix.EEXIST:
		return false, nil // someone else created the name meanwhile
	case err == unix.ENOENT:
		return false, fmt.Errorf("socket %s: cannot restore the name: its private link %s was removed too",
			l.spec.Path, privateName(name))
	default:
		return false, &os.PathError{Op: "link", Path: l.spec.Path, Err: err}
	}
}
