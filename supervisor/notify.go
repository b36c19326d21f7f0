// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/api"
)

// notifyMax is the longest notify message read, as systemd's (PIPE_BUF):
// a longer one is dropped whole, never read in part.
const notifyMax = 4096

// maxStatusText bounds the STATUS= text kept for ctl status.
const maxStatusText = 256

// notifySocket is one process's NOTIFY_SOCKET (sd_notify): a datagram
// socket at an abstract address the kernel picks (autobind), so there is
// no file to create, own or remove. Anyone may send to an abstract
// address; SO_PASSCRED makes the kernel attach the sender's pid to each
// message, and only the process's own process group is heard (T25).
type notifySocket struct {
	conn *net.UnixConn
	// Addr is NOTIFY_SOCKET: "@" and the kernel's name.
	addr string
	// pid is the process once forked (0 before): the reader drops what
	// anyone outside its process group sends.
	pid atomic.Int64
	// post receives the messages; read ends when the socket is closed or
	// pause sets paused, closing stopped.
	post    func(notifyMsg)
	paused  atomic.Bool
	stopped chan struct{}
}

// notifyMsg is one message a process sent, parsed.
type notifyMsg struct {
	from      *notifySocket
	pid       int // the sender, as the kernel says
	ready     bool
	reloading bool
	stopping  bool
	watchdog  bool // WATCHDOG=1
	trigger   bool // WATCHDOG=trigger
	status    *string
	extend    time.Duration // EXTEND_TIMEOUT_USEC, 0 if absent
	mainPid   int
}

func newNotifySocket() (*notifySocket, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	f := os.NewFile(uintptr(fd), "notify")
	defer f.Close() // FileConn keeps a dup
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		return nil, os.NewSyscallError("setsockopt SO_PASSCRED", err)
	}
	// An empty name makes the kernel choose a free abstract one.
	if err := unix.Bind(fd, &unix.SockaddrUnix{}); err != nil {
		return nil, os.NewSyscallError("bind notify socket", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, os.NewSyscallError("getsockname", err)
	}
	ua, ok := sa.(*unix.SockaddrUnix)
	if !ok || !strings.HasPrefix(ua.Name, "@") {
		return nil, fmt.Errorf("notify socket: unexpected address %v", sa)
	}
	return notifyConn(f, ua.Name)
}

func notifyConn(f *os.File, addr string) (*notifySocket, error) {
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("notify socket: %T is not a Unix socket", c)
	}
	return &notifySocket{conn: uc, addr: addr}, nil
}

// adoptNotifySocket wraps fd, the notify socket of process pid that an
// upgrade passed, after checking that it is one: a datagram socket at an
// abstract address, with SO_PASSCRED. A refused fd is left open.
func adoptNotifySocket(fd, pid int) (*notifySocket, error) {
	typ, err1 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	cred, err2 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED)
	sa, err3 := unix.Getsockname(fd)
	ua, ok := sa.(*unix.SockaddrUnix)
	if errors.Join(err1, err2, err3) != nil || typ != unix.SOCK_DGRAM || cred != 1 || !ok || !strings.HasPrefix(ua.Name, "@") {
		return nil, fmt.Errorf("fd %d is not a notify socket", fd)
	}
	f := os.NewFile(uintptr(fd), "notify")
	defer f.Close() // FileConn keeps a dup
	n, err := notifyConn(f, ua.Name)
	if err != nil {
		return nil, err
	}
	n.pid.Store(int64(pid))
	return n, nil
}

// start reads the socket on a goroutine of its own, posting each message.
func (n *notifySocket) start(post func(notifyMsg)) {
	n.post = post
	n.paused.Store(false)
	n.conn.SetReadDeadline(time.Time{})
	n.stopped = make(chan struct{})
	go n.read()
}

// pause stops the reader and returns once it has: what comes next stays
// queued in the socket, for start or an upgrade's next program.
func (n *notifySocket) pause() {
	n.paused.Store(true)
	n.conn.SetReadDeadline(time.Now())
	<-n.stopped
}

// fd returns the socket's fd, for an upgrade to pass.
func (n *notifySocket) fd() int {
	fd := -1
	if rc, err := n.conn.SyscallConn(); err == nil {
		rc.Control(func(f uintptr) { fd = int(f) })
	}
	return fd
}

// read parses what the process sends and posts it until the socket is
// closed or paused. It survives empty, over-long and garbled messages
// (systemd's CVE-2016-7796: a zero-length datagram stopped its reader)
// and closes any fds a sender attached.
func (n *notifySocket) read() {
	defer close(n.stopped)
	buf := make([]byte, notifyMax+1)
	// Room for the credentials and a few fds, which are closed: a
	// sender cannot make udsvisor keep its files.
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(16*4))
	for {
		nb, noob, flags, _, err := n.conn.ReadMsgUnix(buf, oob)
		if errors.Is(err, net.ErrClosed) || n.paused.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
		if err != nil {
			continue // a transient error; the socket stays usable
		}
		pid := senderPid(oob[:noob])
		if nb == 0 || nb > notifyMax || flags&unix.MSG_TRUNC != 0 || pid <= 0 || !n.heard(pid) {
			continue
		}
		m, ok := parseNotify(buf[:nb])
		if !ok {
			continue
		}
		m.from, m.pid = n, pid
		n.post(m)
	}
}

// heard reports whether pid may speak for the process: it is the
// process or in its process group. Before the fork is known, the
// service goroutine decides.
func (n *notifySocket) heard(pid int) bool {
	main := int(n.pid.Load())
	if main == 0 || pid == main {
		return true
	}
	pgid, err := unix.Getpgid(pid)
	return err == nil && pgid == main
}

func (n *notifySocket) close() { n.conn.Close() }

// senderPid returns the pid in the SCM_CREDENTIALS of oob (0 if none)
// and closes every fd passed along.
func senderPid(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	pid := 0
	for _, m := range msgs {
		if fds, err := unix.ParseUnixRights(&m); err == nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			continue
		}
		if cred, err := unix.ParseUnixCredentials(&m); err == nil {
			pid = int(cred.Pid)
		}
	}
	return pid
}

// parseNotify reads the KEY=VALUE lines of a message. Unknown keys are
// ignored, as systemd does; a message that is not text is dropped.
func parseNotify(b []byte) (notifyMsg, bool) {
	var m notifyMsg
	if strings.IndexByte(string(b), 0) >= 0 {
		return m, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch key {
		case "READY":
			m.ready = value == "1"
		case "RELOADING":
			m.reloading = value == "1"
		case "STOPPING":
			m.stopping = value == "1"
		case "WATCHDOG":
			m.watchdog = value == "1"
			m.trigger = value == "trigger"
		case "STATUS":
			text := api.Printable(value)
			if len(text) > maxStatusText {
				text = text[:maxStatusText]
			}
			m.status = &text
		case "EXTEND_TIMEOUT_USEC":
			if us, err := strconv.ParseUint(value, 10, 63); err == nil {
				m.extend = time.Duration(min(us, uint64(1<<63-1)/1000)) * time.Microsecond
			}
		case "MAINPID":
			if pid, err := strconv.Atoi(value); err == nil && pid > 1 {
				m.mainPid = pid
			}
		}
	}
	return m, true
}
