// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// errVanished means the name disappeared while it was being probed.
var errVanished = errors.New("vanished")

// publish gives the listening node tmp in the staging directory stage
// its final name in dirfd: a link when the name is free, a rename over a
// socket proven stale (T7). Either way the name appears with its final
// owner and mode, and a stale name is replaced without ever being
// missing. Anything else at the name is left alone and reported.
func (b *binder) publish(dirfd, stage int, tmp, name, path string) error {
	for range 3 {
		err := unix.Linkat(stage, tmp, dirfd, name, 0)
		if err == nil {
			if err := unix.Unlinkat(stage, tmp, 0); err != nil {
				return fmt.Errorf("socket %s: unlink the staged node: %w", path, os.NewSyscallError("unlink", err))
			}
			return nil
		}
		if err != unix.EEXIST {
			return &os.PathError{Op: "bind", Path: path, Err: err}
		}
		err = b.probe(dirfd, name, path)
		if err == errVanished {
			continue
		}
		if err != nil {
			return err
		}
		if err := unix.Renameat(stage, tmp, dirfd, name); err != nil {
			return &os.PathError{Op: "rename", Path: path, Err: err}
		}
		return nil
	}
	return fmt.Errorf("socket %s: the name keeps changing; giving up", path)
}

// probe returns nil if name in dirfd is a stale socket, one that nobody
// listens on; errVanished if it no longer exists; and otherwise an error
// saying why it must not be replaced. It never follows a symlink: the
// connect goes through /proc/thread-self/fd of an O_NOFOLLOW fd of the name,
// which also keeps long paths within sun_path.
func (b *binder) probe(dirfd int, name, path string) error {
	fd, err := ignoringEINTR(func() (int, error) {
		return unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
	if err == unix.ENOENT {
		return errVanished
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if k := st.Mode & unix.S_IFMT; k != unix.S_IFSOCK {
		return fmt.Errorf("socket %s: exists and is not a socket (%s); refusing to replace it", path, kindName(k))
	}
	// connect(2) to a socket of another type fails with EPROTOTYPE
	// whether or not anyone listens, so try each type in turn.
	for _, typ := range []int{unix.SOCK_STREAM, unix.SOCK_SEQPACKET, unix.SOCK_DGRAM} {
		err := b.connect(typ, procPath(fd, ""))
		switch err {
		case unix.EPROTOTYPE:
			continue
		case unix.ECONNREFUSED:
			return nil
		case nil, unix.EAGAIN, errProbeTimeout:
			// EAGAIN is a full backlog, not a dead socket (T8).
			return &os.PathError{Op: "socket", Path: path, Err: ErrLive}
		case unix.ENOENT:
			return errVanished
		default:
			return fmt.Errorf("socket %s: probing whether it is live: %w; refusing to replace it", path, err)
		}
	}
	return fmt.Errorf("socket %s: exists with an unknown socket type; refusing to replace it", path)
}

var errProbeTimeout = errors.New("timed out")

// connect makes a non-blocking connect of type typ to addr and returns
// its outcome, waiting at most b.probeTimeout for one still in progress.
func (b *binder) connect(typ int, addr string) error {
	c, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(c)
	err = unix.Connect(c, &unix.SockaddrUnix{Name: addr})
	if err != unix.EINPROGRESS {
		return err
	}
	// Unix connects complete or fail at once today; this keeps a future
	// kernel from turning the probe into a hang.
	deadline := time.Now().Add(b.probeTimeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return errProbeTimeout
		}
		fds := []unix.PollFd{{Fd: int32(c), Events: unix.POLLOUT}}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("poll", err)
		}
		if n == 0 {
			return errProbeTimeout
		}
		soErr, err := unix.GetsockoptInt(c, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return os.NewSyscallError("getsockopt", err)
		}
		if soErr != 0 {
			return unix.Errno(soErr)
		}
		return nil
	}
}
