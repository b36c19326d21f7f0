package privdrop

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// prepareFDs makes every fd from 3+n up close at exec and makes sure the
// sockets at 3..3+n-1 do not. The fds are marked, not closed: the Go
// runtime's own (its epoll fd among them) must live until the exec.
func prepareFDs(n int) error {
	if err := closeOnExecFrom(3 + n); err != nil {
		return err
	}
	// os/exec dup2s ExtraFiles without FD_CLOEXEC, but a socket the
	// service never receives would be silent, so make sure.
	for fd := 3; fd < 3+n; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("clear close-on-exec on socket fd %d: %w", fd, err)
		}
	}
	return nil
}

// closeOnExecFrom sets FD_CLOEXEC on every fd >= first. CLOSE_RANGE_CLOEXEC
// needs Linux 5.11; older kernels get a walk of /proc/self/fd.
func closeOnExecFrom(first int) error {
	err := unix.CloseRange(uint(first), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	if err != unix.ENOSYS && err != unix.EINVAL {
		return os.NewSyscallError("close_range", err)
	}
	return closeOnExecScan(first)
}

// closeOnExecScan is closeOnExecFrom without close_range.
func closeOnExecScan(first int) error {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close() // its own fd is CLOEXEC; EBADF on it below is expected
	if err != nil {
		return fmt.Errorf("read /proc/self/fd: %w", err)
	}
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd < first {
			continue
		}
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		if err != nil && err != unix.EBADF {
			return fmt.Errorf("set close-on-exec on fd %d: %w", fd, err)
		}
	}
	return nil
}
