// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/osthread"
)

// A namer binds Unix sockets under their configured path without giving
// that path to the kernel to resolve.
//
// getsockname(2) returns the string given to bind(2). Binding through
// /proc/thread-self/fd/N/NAME (T1: the node lands in the directory the
// walk verified, whatever the path leads to meanwhile) shows that string
// to the app, not its socket's path: Puma matches inherited sockets by
// name, nginx by its NGINX variable, and apps log it. The namer's thread
// has a mount namespace and root of its own: a private tmpfs holding
// only /proc, in which the socket's directory path is, for the duration
// of one bind, a symlink to /proc/thread-self/fd/N of the staging
// directory Bind made. bind(2) of the configured path so resolves to
// exactly that directory, and the socket's name is the configured path.
//
// It needs CAP_SYS_ADMIN and Linux 5.2 (open_tree, fsopen). Where it
// cannot be made, Bind binds through /proc/thread-self/fd as before.
type namer struct {
	reqs chan nameReq
}

type nameReq struct {
	sock, dirfd int
	path        string
	reply       chan error // capacity 1: the namer never waits for the caller
}

// sharedNamer is the process's namer, made at the first Bind of a Unix
// socket; nil with the reason when it cannot be made. Its thread lives as
// long as the process: it holds no file but its /proc.
var sharedNamer = sync.OnceValues(newNamer)

func newNamer() (*namer, error) {
	n := &namer{reqs: make(chan nameReq)}
	ready := make(chan error, 1)
	osthread.Go(func() { n.run(ready) })
	if err := <-ready; err != nil {
		return nil, err
	}
	return n, nil
}

// bind binds sock to path, whose directory is dirfd. Only the thread's
// view of the path is used: the real path is never resolved.
func (n *namer) bind(sock, dirfd int, path string) error {
	r := nameReq{sock: sock, dirfd: dirfd, path: path, reply: make(chan error, 1)}
	n.reqs <- r
	return <-r.reply
}

func (n *namer) run(ready chan<- error) {
	if err := enterPrivateRoot(); err != nil {
		ready <- fmt.Errorf("bind under the configured name: %w", err)
		return
	}
	ready <- nil
	for r := range n.reqs {
		r.reply <- bindVia(r.sock, r.dirfd, r.path)
	}
}

// enterPrivateRoot gives the calling thread a mount namespace of its own
// whose only mounts are a tmpfs as root and a clone of /proc. Nothing it
// does there is seen by any other thread or process, and it pins no other
// filesystem (the old root and its mounts are detached).
func enterPrivateRoot() error {
	// Cloned from the process's namespace before leaving it.
	proc, err := unix.OpenTree(unix.AT_FDCWD, "/proc", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree /proc: %w", err)
	}
	defer unix.Close(proc)
	if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	// From here on the thread is in its own namespace: nothing it mounts
	// may propagate back.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen tmpfs: %w", err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigSetString(fsfd, "mode", "0700"); err != nil {
		return fmt.Errorf("fsconfig tmpfs: %w", err)
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("fsconfig tmpfs: %w", err)
	}
	root, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOEXEC|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return fmt.Errorf("fsmount tmpfs: %w", err)
	}
	defer unix.Close(root)
	// pivot_root wants the new root attached; where does not matter.
	if err := unix.MoveMount(root, "", unix.AT_FDCWD, "/", unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach tmpfs: %w", err)
	}
	if err := unix.Fchdir(root); err != nil {
		return fmt.Errorf("chdir tmpfs: %w", err)
	}
	// runc's way: the old root goes on top of the new one and is then
	// detached with every mount below it.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	if err := unix.Mkdir("/proc", 0o555); err != nil {
		return fmt.Errorf("mkdir /proc: %w", err)
	}
	if err := unix.MoveMount(proc, "", unix.AT_FDCWD, "/proc", unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach /proc: %w", err)
	}
	return nil
}

// bindVia binds sock to path with path's directory, in the private root,
// a symlink to /proc/thread-self/fd/<dirfd> for the duration of the call.
// Everything it creates in the private root it removes again.
func bindVia(sock, dirfd int, path string) error {
	dir := filepath.Dir(path)
	var parents []string // outermost last
	for p := filepath.Dir(dir); p != "/"; p = filepath.Dir(p) {
		parents = append(parents, p)
	}
	var made []string // innermost first, the order to remove them in
	defer func() {
		for _, p := range made {
			unix.Rmdir(p)
		}
	}()
	for i := len(parents) - 1; i >= 0; i-- {
		if err := unix.Mkdir(parents[i], 0o700); err != nil {
			return fmt.Errorf("private root: mkdir %s: %w", parents[i], err)
		}
		made = append([]string{parents[i]}, made...)
	}
	if err := unix.Symlink("/proc/thread-self/fd/"+strconv.Itoa(dirfd), dir); err != nil {
		return fmt.Errorf("private root: symlink %s: %w", dir, err)
	}
	defer unix.Unlink(dir)
	return unix.Bind(sock, &unix.SockaddrUnix{Name: path})
}

// namable reports whether the namer can bind path: it must fit in
// sun_path, and its directory cannot be "/" or inside /proc, which the
// private root needs for itself.
func namable(path string) bool {
	dir := filepath.Dir(path)
	return len(path) <= maxSunPath && dir != "/" && dir != "/proc" && !strings.HasPrefix(dir, "/proc/")
}
