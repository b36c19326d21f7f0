// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrPoisoned is wrapped by the error Check returns for a socket that no
// longer accepts connections, so that a caller can tell it apart from a
// failure to check with errors.Is.
var ErrPoisoned = errors.New("shut down: connects are refused; it must be rebound")

// Check reports whether the socket still accepts connections: nil if it
// does, an error wrapping ErrPoisoned if not. A child shares the open file
// description of the listening socket, so shutdown(fd, SHUT_RD or
// SHUT_RDWR) in the child kills it for everyone: the kernel refuses every
// connect with ECONNREFUSED, a new listen(2) does not revive it, and for a
// Unix socket SO_ACCEPTCONN still reads 1 (SECURITY-NOTES section 6,
// "Poisoned listener").
//
// Check reads the socket's state instead of connecting to it: a probe
// connect would leave a connection in the backlog for the next child to
// accept and find empty, and a full backlog (EAGAIN) would hide the
// answer. poll(2) shows POLLRDHUP exactly when the receive side is shut
// down, which is the condition af_unix.c unix_stream_connect refuses on;
// a TCP listener that was shut down stops listening altogether, which
// SO_ACCEPTCONN shows.
func (l *Listener) Check() error {
	return l.live(func(p string) error { return check(int(l.file.Fd()), p) })
}

func check(fd int, name string) error {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
	for {
		_, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("socket %s: %w", name, os.NewSyscallError("poll", err))
		}
		break
	}
	if fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
		return fmt.Errorf("socket %s: %w", name, ErrPoisoned)
	}
	on, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return fmt.Errorf("socket %s: %w", name, os.NewSyscallError("getsockopt SO_ACCEPTCONN", err))
	}
	if on == 0 {
		return fmt.Errorf("socket %s: %w", name, ErrPoisoned)
	}
	return nil
}

// Rebind replaces the socket with a new one for the same Spec and closes
// the old one; File returns the new socket afterwards. It is meant for a
// socket that Check found poisoned: connections queued on the old socket
// are lost with it.
//
// A Unix socket is made by the recipe of Bind in the directory Bind
// verified: bound to a temporary name, given its owner and mode, listening,
// and then renamed over the public name, which therefore never goes
// missing; the private link follows it. A TCP socket is bound to the same
// address and port again.
//
// On error the listener keeps its old socket, unless the new one was
// already published under the public name: then it keeps the new one and
// the error says what could not be finished.
func (l *Listener) Rebind() error { return newBinder().rebind(l) }

func (b *binder) rebind(l *Listener) error {
	return l.live(func(string) error {
		if l.spec.Path == "" {
			return l.rebindTCP()
		}
		return b.rebindUnix(l)
	})
}

func (b *binder) rebindUnix(l *Listener) error {
	p := l.spec.Path
	// The directory was verified by Bind and is pinned by l.dir; check it
	// again in case its owner or mode changed since.
	if err := checkDir(l.dir, filepath.Dir(p), true); err != nil {
		return err
	}
	name := filepath.Base(p)
	n, err := b.listenTemp(l.dir, name, l.spec)
	if err != nil {
		return err
	}
	// publish renames over the old socket, which a connect probe shows to
	// be dead: the name is never missing. It refuses anything that answers
	// or is not a socket.
	if err := b.publish(l.dir, n.stage, n.tmp, name, p); err != nil {
		n.abort(l.dir)
		return err
	}
	n.tmp = ""
	n.dropStage(l.dir)

	oldFile, oldNode := l.file, l.node
	oldSt := unix.Stat_t{Dev: l.dev, Ino: l.ino}
	l.file = os.NewFile(uintptr(n.sock), p)
	l.node, l.dev, l.ino = n.node, n.st.Dev, n.st.Ino
	oldFile.Close()
	unix.Close(oldNode)

	var errs []error
	if err := b.linkPrivate(l.node, l.dir, name, p); err != nil {
		// The private name still keeps the dead socket's inode; drop it
		// so that nothing mistakes it for the live one.
		unlinkIfSame(l.dir, privateName(name), &oldSt)
		errs = append(errs, err)
	}
	if err := checkPublished(l.dir, name, p, &n.st); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// rebindTCP binds a new socket to the address the old one has (the
// configured port, or the one the kernel picked for port 0), then closes
// the old one. SO_REUSEADDR lets it bind next to a socket that no longer
// listens; next to one that still listens it fails with EADDRINUSE and
// the old socket stays.
func (l *Listener) rebindTCP() error {
	spec := l.spec
	sa, err := unix.Getsockname(int(l.file.Fd()))
	if err != nil {
		return fmt.Errorf("listen %s: %w", spec.Addr, os.NewSyscallError("getsockname", err))
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		spec.Addr = netip.AddrPortFrom(spec.Addr.Addr(), uint16(sa.Port))
	case *unix.SockaddrInet6:
		spec.Addr = netip.AddrPortFrom(spec.Addr.Addr(), uint16(sa.Port))
	}
	n, err := bindTCP(spec)
	if err != nil {
		return err
	}
	old := l.file
	l.file = n.file
	old.Close()
	return nil
}
