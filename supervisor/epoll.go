// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// polledEpoll is an epoll instance that a goroutine waits on in the Go
// runtime's poller rather than in a thread of its own: the epoll fd is
// non-blocking (never the fds in it, whose flags the services share), so
// os.File parks the waiter until it is readable. The accept watches and
// the output reader use it; a thousand of them cost no thread.
type polledEpoll struct {
	f  *os.File
	fd int
}

func newPolledEpoll(name string) (*polledEpoll, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	return &polledEpoll{f: os.NewFile(uintptr(fd), name), fd: fd}, nil
}

// add watches fd for events: EPOLLIN alone is level-triggered, ready
// while fd has something to read (a waiting connection, bytes in a pipe);
// with EPOLLET, ready once per arrival. data comes back in the event's
// Fd field.
func (e *polledEpoll) add(fd int, data int32, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: data}
	return os.NewSyscallError("epoll_ctl", unix.EpollCtl(e.fd, unix.EPOLL_CTL_ADD, fd, &ev))
}

// watchEpoll is a polledEpoll over a service's listeners, each with its
// index as data.
func watchEpoll(name string, listeners []*os.File, events uint32) (*polledEpoll, error) {
	ep, err := newPolledEpoll(name)
	if err != nil {
		return nil, err
	}
	for i, l := range listeners {
		if err := ep.add(int(l.Fd()), int32(i), events); err != nil {
			ep.Close()
			return nil, err
		}
	}
	return ep, nil
}

// wait parks until at least one event is ready and returns them in
// events. It fails with os.ErrDeadlineExceeded at the deadline set with
// setDeadline, and with an error once the epoll is closed.
func (e *polledEpoll) wait(events []unix.EpollEvent) (int, error) {
	rc, err := e.f.SyscallConn()
	if err != nil {
		return 0, err
	}
	n := 0
	var werr error
	err = rc.Read(func(fd uintptr) bool {
		n, werr = unix.EpollWait(int(fd), events, 0)
		switch {
		case errors.Is(werr, unix.EINTR):
			n, werr = 0, nil // look again
		case werr != nil:
			return true
		}
		return n > 0 // false parks until the epoll fd is readable
	})
	if werr != nil {
		return 0, os.NewSyscallError("epoll_wait", werr)
	}
	return n, err
}

// setDeadline bounds wait; a deadline in the past wakes a waiter now.
func (e *polledEpoll) setDeadline(t time.Time) error { return e.f.SetReadDeadline(t) }

// Close closes the epoll, which also wakes a waiter.
func (e *polledEpoll) Close() error { return e.f.Close() }
