// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// maxSunPath is the longest sun_path Go and x/sys accept (SECURITY-NOTES
// 0.12).
const maxSunPath = 107

// bindUnix follows the recipe in the package doc. Every error path removes
// what Bind created: the temporary name, the final name if it was already
// published, and the directories.
func (b *binder) bindUnix(spec Spec) (l *Listener, err error) {
	w, err := b.walkDirs(spec)
	if err != nil {
		return nil, err
	}
	dirfd := w.last()
	name := filepath.Base(spec.Path)
	n, err := b.listenTemp(dirfd, name, spec)
	if err != nil {
		w.removeCreated()
		w.close()
		return nil, err
	}
	defer func() {
		if err == nil {
			return
		}
		unlinkIfSame(dirfd, name, &n.st)
		unlinkIfSame(dirfd, privateName(name), &n.st)
		n.abort(dirfd)
		w.removeCreated()
		w.close()
	}()

	if err := b.publish(dirfd, n.stage, n.tmp, name, spec.Path); err != nil {
		return nil, err
	}
	n.tmp = ""
	n.dropStage(dirfd)
	if err := b.linkPrivate(n.node, dirfd, name, spec.Path); err != nil {
		return nil, err
	}
	if err := checkPublished(dirfd, name, spec.Path, &n.st); err != nil {
		return nil, err
	}

	l = &Listener{
		spec:    spec,
		file:    os.NewFile(uintptr(n.sock), spec.Path),
		dir:     dirfd,
		node:    n.node,
		dev:     n.st.Dev,
		ino:     n.st.Ino,
		created: w.created,
		fds:     w.trim(),
	}
	return l, nil
}

// tempSocket is a listening socket with its final owner and mode, bound
// in a staging directory next to its final name and not yet published.
type tempSocket struct {
	sock int         // the socket fd
	node int         // an O_PATH fd of its file
	st   unix.Stat_t // of node
	// stage is an O_PATH fd of the staging directory, stageName its name
	// in the socket's directory; stage is -1 once it is removed.
	stage     int
	stageName string
	tmp       string // the node's name in stage; "" once published
}

// abort removes the node from the staging directory, if still there, and
// the staging directory, and closes the fds.
func (n *tempSocket) abort(dirfd int) {
	if n.tmp != "" {
		// The staging directory is root's, 0700, with a random name,
		// so whatever is in it is our own node (or the link a test
		// hook put in its place).
		unix.Unlinkat(n.stage, n.tmp, 0)
		n.tmp = ""
	}
	n.dropStage(dirfd)
	unix.Close(n.node)
	unix.Close(n.sock)
}

// dropStage removes the (empty) staging directory and closes its fd.
func (n *tempSocket) dropStage(dirfd int) {
	if n.stage < 0 {
		return
	}
	unix.Close(n.stage)
	n.stage = -1
	unix.Unlinkat(dirfd, n.stageName, unix.AT_REMOVEDIR)
}

// listenTemp makes a socket for spec, bound in a fresh staging directory
// inside the verified directory dirfd, owned and moded as spec says, and
// listening (step 3 of the package doc). On error it leaves nothing
// behind.
func (b *binder) listenTemp(dirfd int, name string, spec Spec) (_ *tempSocket, err error) {
	n := &tempSocket{sock: -1, node: -1, stage: -1}
	defer func() {
		if err != nil {
			n.abort(dirfd)
		}
	}()
	n.sock, err = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "socket", Path: spec.Path, Err: err}
	}
	// Defence in depth for T4: bind(2) creates the node with the sockfs
	// inode's mode minus the umask (af_unix.c unix_bind_bsd), so with this
	// the node is born 0000 even if the caller forgot umask 0077.
	if err := unix.Fchmod(n.sock, 0); err != nil {
		return nil, fmt.Errorf("socket %s: %w", spec.Path, os.NewSyscallError("fchmod", err))
	}
	if err := n.makeStage(dirfd, name, spec.Path); err != nil {
		return nil, err
	}
	if err := b.bindStaged(n, name, spec.Path); err != nil {
		return nil, err
	}
	if b.afterBind != nil {
		b.afterBind(n.stage, n.tmp)
	}

	// Pin the node and check it before chown: a symlink or a hard link to
	// another file at the temporary name must never be chowned (T3, T6).
	tmpPath := filepath.Join(filepath.Dir(spec.Path), n.stageName, n.tmp)
	n.node, err = ignoringEINTR(func() (int, error) {
		return unix.Openat(n.stage, n.tmp, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: tmpPath, Err: err}
	}
	if err := unix.Fstat(n.node, &n.st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: tmpPath, Err: err}
	}
	if k := n.st.Mode & unix.S_IFMT; k != unix.S_IFSOCK || n.st.Nlink != 1 {
		return nil, fmt.Errorf("socket %s: temporary name %s was replaced by a %s with %d links; refusing",
			spec.Path, filepath.Join(n.stageName, n.tmp), kindName(k), n.st.Nlink)
	}
	if err := setOwnerFD(n.node, spec.UID, spec.GID, spec.Mode); err != nil {
		return nil, fmt.Errorf("socket %s: %w", spec.Path, err)
	}
	if err := unix.Listen(n.sock, spec.Backlog); err != nil {
		return nil, &os.PathError{Op: "listen", Path: spec.Path, Err: err}
	}
	return n, nil
}

// makeStage makes the staging directory: root's, 0700, under a random
// name in dirfd.
func (n *tempSocket) makeStage(dirfd int, name, path string) error {
	// The usual name is fixed, so that the leftover of a udsvisor killed
	// in the middle of a bind is found and removed by the next bind;
	// random names serve when it is taken by a bind under way.
	n.stageName = stageName(name)
	err := unix.Mkdirat(dirfd, n.stageName, 0o700)
	if err == unix.EEXIST && removeLeftoverStage(dirfd, n.stageName) {
		err = unix.Mkdirat(dirfd, n.stageName, 0o700)
	}
	for attempt := 0; err == unix.EEXIST && attempt < 3; attempt++ {
		n.stageName = tempName(name)
		err = unix.Mkdirat(dirfd, n.stageName, 0o700)
	}
	if err != nil {
		// Named by the socket's path: the staging directory is
		// udsvisor's detail, the full disk or read-only mount is not.
		return &os.PathError{Op: "bind", Path: path, Err: err}
	}
	fd, err := ignoringEINTR(func() (int, error) {
		return unix.Openat(dirfd, n.stageName, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		unix.Unlinkat(dirfd, n.stageName, unix.AT_REMOVEDIR)
		return &os.PathError{Op: "open", Path: filepath.Join(filepath.Dir(path), n.stageName), Err: err}
	}
	n.stage = fd
	return nil
}

// bindStaged binds n's socket as name in its staging directory: through
// the namer, so that the socket's name is path (the app's getsockname
// returns what it was configured with), or, where the namer cannot be
// had, through /proc/thread-self/fd/<stage>/. Either way the node lands
// in the directory the walk verified, whatever the path leads to by now.
func (b *binder) bindStaged(n *tempSocket, name, path string) error {
	if b.namer != nil && namable(path) {
		if nm, err := b.namer(); err == nil {
			n.tmp = name
			if err := nm.bind(n.sock, n.stage, path); err != nil {
				n.tmp = ""
				return &os.PathError{Op: "bind", Path: path, Err: err}
			}
			return nil
		}
	}
	n.tmp = name
	if len(procPath(n.stage, name)) > maxSunPath {
		n.tmp = "s"
	}
	if err := unix.Bind(n.sock, &unix.SockaddrUnix{Name: procPath(n.stage, n.tmp)}); err != nil {
		n.tmp = ""
		return &os.PathError{Op: "bind", Path: path, Err: err}
	}
	return nil
}

// checkPublished verifies that name in dirfd is the file st describes.
func checkPublished(dirfd int, name, path string, st *unix.Stat_t) error {
	var cur unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &cur, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if cur.Dev != st.Dev || cur.Ino != st.Ino {
		return fmt.Errorf("socket %s: replaced while being published; refusing", path)
	}
	return nil
}

// tempName returns ".<name>.<random>.tmp", or ".<random>.tmp" when the
// former would be longer than NAME_MAX.
func tempName(name string) string {
	var r [6]byte
	rand.Read(r[:]) // never fails (crypto/rand docs)
	suffix := hex.EncodeToString(r[:]) + ".tmp"
	if tmp := "." + name + "." + suffix; len(tmp) <= 255 {
		return tmp
	}
	return "." + suffix
}

// unlinkIfSame unlinks name in dirfd if it is the file st describes.
func unlinkIfSame(dirfd int, name string, st *unix.Stat_t) error {
	var cur unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &cur, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return err
	}
	if cur.Dev != st.Dev || cur.Ino != st.Ino {
		return nil
	}
	if err := unix.Unlinkat(dirfd, name, 0); err != nil && err != unix.ENOENT {
		return err
	}
	return nil
}

// closeUnix removes the name and the directories that Bind created, if
// they are still ours, and closes the directory fds.
func (l *Listener) closeUnix() error {
	var errs []error
	st := unix.Stat_t{Dev: l.dev, Ino: l.ino}
	name := filepath.Base(l.spec.Path)
	if err := unlinkIfSame(l.dir, name, &st); err != nil {
		errs = append(errs, &os.PathError{Op: "unlink", Path: l.spec.Path, Err: err})
	}
	if err := unlinkIfSame(l.dir, privateName(name), &st); err != nil {
		errs = append(errs, &os.PathError{Op: "unlink", Path: filepath.Join(filepath.Dir(l.spec.Path), privateName(name)), Err: err})
	}
	unix.Close(l.node)
	if err := removeDirs(l.created); err != nil {
		errs = append(errs, err)
	}
	for _, fd := range l.fds {
		unix.Close(fd)
	}
	return errors.Join(errs...)
}

// setOwner applies owner and mode to the socket file Bind created, even
// if its name was unlinked or replaced meanwhile. It first narrows the
// mode to what both the old and the new setting allow, so that between
// the steps nobody has access that neither grants.
func (l *Listener) setOwner(uid, gid int, mode fs.FileMode) error {
	p := l.spec.Path
	var st unix.Stat_t
	if err := unix.Fstat(l.node, &st); err != nil {
		return &os.PathError{Op: "stat", Path: p, Err: err}
	}
	narrow := fs.FileMode(st.Mode&0o777) & mode
	if err := unix.Chmod(procPath(l.node, ""), uint32(narrow)); err != nil {
		return &os.PathError{Op: "chmod", Path: p, Err: err}
	}
	if err := setOwnerFD(l.node, uid, gid, mode); err != nil {
		return fmt.Errorf("socket %s: %w", p, err)
	}
	return nil
}

// kindName names a file type for error messages.
func kindName(k uint32) string {
	switch k {
	case unix.S_IFREG:
		return "regular file"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("file of type %#o", k)
}
