// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// dirWalk is the result of opening the directories of a socket path.
type dirWalk struct {
	// fds are O_PATH fds of "/" and each directory component in order;
	// paths are their paths. Only the last one and the parents of created
	// directories stay open after trim.
	fds   []int
	paths []string
	// created lists the directories this walk made, outermost first.
	created []createdDir
}

// last returns the fd of the socket's own directory.
func (w *dirWalk) last() int { return w.fds[len(w.fds)-1] }

// close closes every fd the walk holds.
func (w *dirWalk) close() {
	for _, fd := range w.fds {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	w.fds = nil
}

// trim closes the fds that neither Close nor SetOwner will need and
// returns the rest: the parents of created directories and the last one.
func (w *dirWalk) trim() []int {
	keep := make(map[int]bool, len(w.created)+1)
	keep[w.last()] = true
	for _, c := range w.created {
		keep[c.parent] = true
	}
	var kept []int
	for _, fd := range w.fds {
		if keep[fd] {
			kept = append(kept, fd)
		} else {
			unix.Close(fd)
		}
	}
	w.fds = nil
	return kept
}

// procPath names the file name in the directory open as dirfd through
// /proc, which pins the directory Bind verified instead of resolving its
// path again. It is thread-self, not self: /proc/self/fd is the main
// thread's table, which in udsvisor is the launcher's own (privdrop), not
// the one every other thread shares.
func procPath(dirfd int, name string) string {
	if name == "" {
		return "/proc/thread-self/fd/" + strconv.Itoa(dirfd)
	}
	return "/proc/thread-self/fd/" + strconv.Itoa(dirfd) + "/" + name
}

// openDir opens the single component comp of parent as an O_PATH
// directory fd, refusing symlinks (T1).
func (b *binder) openDir(parent int, comp string) (int, error) {
	if !b.noOpenat2 {
		fd, err := ignoringEINTR(func() (int, error) {
			return unix.Openat2(parent, comp, &unix.OpenHow{
				Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC | unix.O_NOFOLLOW,
				Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
			})
		})
		if err != unix.ENOSYS {
			return fd, err
		}
	}
	// Kernels before 5.6: comp is a single component, so O_NOFOLLOW
	// covers the only name resolved.
	return ignoringEINTR(func() (int, error) {
		return unix.Openat(parent, comp, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
}

// walkDirs opens every directory of the socket path spec.Path from "/",
// creating the missing ones as root:GID with DirMode and refusing unsafe
// existing ones (T2). On error nothing it created is left behind.
func (b *binder) walkDirs(spec Spec) (w *dirWalk, err error) {
	w = &dirWalk{}
	defer func() {
		if err != nil {
			w.removeCreated()
			w.close()
		}
	}()
	root, err := ignoringEINTR(func() (int, error) {
		return unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return w, &os.PathError{Op: "open", Path: "/", Err: err}
	}
	w.fds, w.paths = append(w.fds, root), append(w.paths, "/")

	dir := filepath.Dir(spec.Path)
	var comps []string
	if dir != "/" {
		comps = strings.Split(dir[1:], "/")
	}
	if len(comps) == 0 {
		return w, checkDir(root, "/", true)
	}
	if err := checkDir(root, "/", false); err != nil {
		return w, err
	}
	for i, comp := range comps {
		parent := w.last()
		p := filepath.Join(w.paths[len(w.paths)-1], comp)
		last := i == len(comps)-1
		fd, err := b.openDir(parent, comp)
		if err == unix.ENOENT {
			fd, err = b.makeDir(w, parent, comp, p, spec)
			if err != nil {
				return w, err
			}
			w.fds, w.paths = append(w.fds, fd), append(w.paths, p)
			continue
		}
		if err != nil {
			return w, openError(parent, comp, p, err)
		}
		w.fds, w.paths = append(w.fds, fd), append(w.paths, p)
		if err := checkDir(fd, p, last); err != nil {
			return w, err
		}
	}
	return w, nil
}

// makeDir creates comp in parent as root:GID with DirMode and records it
// in w. If another process created it first, it is checked as an existing
// directory instead.
func (b *binder) makeDir(w *dirWalk, parent int, comp, p string, spec Spec) (int, error) {
	// 0700 until chown and chmod widen it, like the socket itself.
	err := unix.Mkdirat(parent, comp, 0o700)
	if err == unix.EEXIST {
		fd, err := b.openDir(parent, comp)
		if err != nil {
			return -1, openError(parent, comp, p, err)
		}
		if err := checkDir(fd, p, filepath.Dir(spec.Path) == p); err != nil {
			unix.Close(fd)
			return -1, err
		}
		return fd, nil
	}
	if err != nil {
		return -1, &os.PathError{Op: "mkdir", Path: p, Err: err}
	}
	// Record it before anything else can fail, so that it is removed on
	// error.
	var st unix.Stat_t
	if err := unix.Fstatat(parent, comp, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return -1, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	w.created = append(w.created, createdDir{parent: parent, name: comp, path: p, dev: st.Dev, ino: st.Ino})
	fd, err := b.openDir(parent, comp)
	if err != nil {
		return -1, openError(parent, comp, p, err)
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	if c := w.created[len(w.created)-1]; st.Dev != c.dev || st.Ino != c.ino {
		unix.Close(fd)
		return -1, fmt.Errorf("directory %s: replaced while being created; refusing", p)
	}
	if err := setOwnerFD(fd, 0, spec.GID, spec.DirMode); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("directory %s: %w", p, err)
	}
	return fd, nil
}

// openError turns an error from openDir into one that names the
// component, saying so when it is a symlink.
func openError(parent int, comp, p string, err error) error {
	symlink := fmt.Errorf("%s: is a symlink; refusing to follow it", p)
	switch err {
	case unix.ELOOP:
		// Only a symlink gives ELOOP under RESOLVE_NO_SYMLINKS or
		// O_NOFOLLOW.
		return symlink
	case unix.ENOTDIR:
		// O_DIRECTORY|O_NOFOLLOW on a symlink; or a file that is no
		// directory at all.
		var st unix.Stat_t
		if unix.Fstatat(parent, comp, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFLNK:
				return symlink
			case unix.S_IFDIR:
				return fmt.Errorf("%s: changed while being opened (a symlink swapped in?); refusing", p)
			}
		}
	}
	return &os.PathError{Op: "open", Path: p, Err: err}
}

// checkDir refuses a directory that someone other than root could use to
// swap or squat the socket (T2): every directory must be root-owned and
// not writable by group or others, except a sticky one above the socket's
// own directory (like /tmp on the way to /tmp/app/a.sock).
func checkDir(fd int, p string, last bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: p, Err: err}
	}
	mode := st.Mode & 0o7777
	writable := mode&0o022 != 0
	sticky := mode&unix.S_ISVTX != 0
	if st.Uid == 0 && (!writable || sticky && !last) {
		return nil
	}
	return fmt.Errorf("directory %s is owned by uid %d, mode %04o; refusing", p, st.Uid, mode)
}

// removeCreated removes the directories the walk created, deepest first,
// while they are empty and still the ones it created.
func (w *dirWalk) removeCreated() error {
	return removeDirs(w.created)
}

func removeDirs(created []createdDir) error {
	for i := len(created) - 1; i >= 0; i-- {
		c := created[i]
		var st unix.Stat_t
		err := unix.Fstatat(c.parent, c.name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.ENOENT {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "stat", Path: c.path, Err: err}
		}
		if st.Dev != c.dev || st.Ino != c.ino {
			continue // replaced: not ours to remove
		}
		err = unix.Unlinkat(c.parent, c.name, unix.AT_REMOVEDIR)
		switch {
		case err == nil, err == unix.ENOENT:
		case err == unix.ENOTEMPTY || err == unix.EEXIST:
			// Still in use (another socket, or a file someone put
			// there); its parents are not empty either.
			return nil
		default:
			return &os.PathError{Op: "rmdir", Path: c.path, Err: err}
		}
	}
	return nil
}

// setOwnerFD sets owner, group and mode of the file open as the O_PATH fd
// fd. fchownat(AT_EMPTY_PATH) and chmod of the /proc magic link act on
// that exact inode, whatever its name now refers to; fchmod would fail
// with EBADF on an O_PATH fd (SECURITY-NOTES 0.1).
func setOwnerFD(fd, uid, gid int, mode fs.FileMode) error {
	if err := unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
		return os.NewSyscallError("fchownat", err)
	}
	if err := unix.Chmod(procPath(fd, ""), uint32(mode.Perm())); err != nil {
		return os.NewSyscallError("chmod", err)
	}
	return nil
}

func ignoringEINTR(f func() (int, error)) (int, error) {
	for {
		fd, err := f()
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}
