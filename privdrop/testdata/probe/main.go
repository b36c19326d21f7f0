// SPDX-License-Identifier: Apache-2.0

// Command probe is the service that privdrop's tests launch. It reports
// what it was started with as one JSON line on stdout, then exits or, with
// the argument "block", waits to be killed so that the test can read
// /proc/PID.
//
// The test counts the fds the probe holds, so the probe opens none of its
// own while it blocks (but the listeners "serve=" asks for): it reads
// /proc and uses the network with raw syscalls and sleeps with
// nanosleep, because os.Open, net and time.Sleep start the runtime's
// poller (an epoll fd and an eventfd). The runtime's cgroup files (Go
// 1.25+) stay closed because the test sets GODEBUG=containermaxprocs=0.
//
// Further arguments: "bind=ADDR:PORT", "dial=ADDR:PORT" and
// "serve=ADDR:PORT" try TCP on an IP literal (see Report), "ifaces" lists
// the network interfaces, and "accept" answers one connection on fd 3
// after the report.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"
)

// FD is one open fd as the probe found it at start.
type FD struct {
	Target  string `json:"target"`
	Cloexec bool   `json:"cloexec"`
}

// Report is what the probe prints.
type Report struct {
	PID    int           `json:"pid"`
	UID    int           `json:"uid"`
	EUID   int           `json:"euid"`
	GID    int           `json:"gid"`
	EGID   int           `json:"egid"`
	Groups []int         `json:"groups"`
	Env    []string      `json:"env"`
	FDs    map[string]FD `json:"fds"`
	Cwd    string        `json:"cwd"`
	Umask  int           `json:"umask"`
	TTY    string        `json:"tty"` // error from opening /dev/tty, "" if it opened
	// Activation lists the names go-systemd's activation.Files gives
	// the inherited fds; it returns none unless LISTEN_PID is our pid.
	Activation []string `json:"activation"`
	// Bind is the outcome of binding the TCP address given as
	// "bind=ADDR:PORT": "ok" or the error.
	Bind string `json:"bind,omitempty"`
	// Ifaces lists the network interfaces the probe sees, with
	// "ifaces".
	Ifaces []Iface `json:"ifaces,omitempty"`
	// Dial is the outcome of a TCP connect to the address given as
	// "dial=ADDR:PORT": "ok" or the error.
	Dial string `json:"dial,omitempty"`
	// Serve holds one entry per "serve=ADDR:PORT": a TCP listener the
	// probe keeps open while it blocks, which it first connects to
	// itself to show that the address works.
	Serve []Served `json:"serve,omitempty"`
	Err   string   `json:"err,omitempty"`
}

// Iface is one network interface.
type Iface struct {
	Name  string `json:"name"`
	Flags string `json:"flags"` // net.Flags, e.g. "up|loopback|running"
}

// Served is the outcome of one "serve=ADDR:PORT".
type Served struct {
	Addr string `json:"addr"`
	Port int    `json:"port"` // the port bound, useful with port 0
	Err  string `json:"err,omitempty"`
}

// keep holds the activation files: their finalizers would close the
// sockets while the test still inspects them.
var keep []*os.File

func main() {
	r := Report{PID: os.Getpid(), UID: os.Getuid(), EUID: os.Geteuid(), GID: os.Getgid(), EGID: os.Getegid(), Env: os.Environ()}
	var err error
	if r.FDs, err = fds(); err != nil {
		r.Err = err.Error()
	}
	if r.Groups, err = unix.Getgroups(); err != nil {
		r.Err = err.Error()
	}
	r.Cwd, _ = unix.Getwd()
	r.Umask = unix.Umask(0)
	unix.Umask(r.Umask)
	if fd, err := unix.Open("/dev/tty", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0); err != nil {
		r.TTY = err.Error()
	} else {
		unix.Close(fd)
	}
	keep = activation.Files(false)
	r.Activation = []string{}
	for _, f := range keep {
		r.Activation = append(r.Activation, f.Name())
	}

	block, accept := false, false
	for _, arg := range os.Args[1:] {
		name, addr, _ := strings.Cut(arg, "=")
		switch name {
		case "block":
			block = true
		case "accept":
			accept = true
		case "ifaces":
			if r.Ifaces, err = ifaces(); err != nil {
				r.Err = err.Error()
			}
		case "bind":
			r.Bind = bind(addr)
		case "dial":
			r.Dial = dial(addr)
		case "serve":
			r.Serve = append(r.Serve, serve(addr))
		}
	}

	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		os.Exit(2)
	}
	if accept {
		// After the report, so that the test knows the probe is up:
		// one connection on the socket at fd 3, answered "accepted".
		if fd, _, err := unix.Accept(3); err == nil {
			unix.Write(fd, []byte("accepted\n"))
			unix.Close(fd)
		}
	}
	if block {
		for {
			unix.Nanosleep(&unix.Timespec{Sec: 3600}, nil)
		}
	}
}

// bind binds a TCP socket to addr and closes it again, with raw syscalls
// (see the package comment), and reports "ok" or the error.
func bind(addr string) string {
	fd, sa, err := tcpSocket(addr)
	if err != nil {
		return err.Error()
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, sa); err != nil {
		return err.Error()
	}
	return "ok"
}

// tcpSocket makes a TCP socket for the IP literal and port in addr.
func tcpSocket(addr string) (int, unix.Sockaddr, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return -1, nil, fmt.Errorf("bad address %q", addr)
	}
	family := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	if ap.Addr().Is4() {
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	return fd, sa, err
}

// dial connects to addr and closes the connection again, and reports
// "ok" or the error.
func dial(addr string) string {
	fd, sa, err := tcpSocket(addr)
	if err != nil {
		return err.Error()
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, sa); err != nil {
		return err.Error()
	}
	return "ok"
}

// serve listens on addr, connects to the listener to show that the
// address works, and leaves the listener open (a raw fd, which no
// finalizer closes).
func serve(addr string) Served {
	s := Served{Addr: addr}
	fd, sa, err := tcpSocket(addr)
	if err != nil {
		s.Err = err.Error()
		return s
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		s.Err = "bind: " + err.Error()
		return s
	}
	if err := unix.Listen(fd, 8); err != nil {
		unix.Close(fd)
		s.Err = "listen: " + err.Error()
		return s
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		s.Err = "getsockname: " + err.Error()
		return s
	}
	switch b := bound.(type) {
	case *unix.SockaddrInet4:
		s.Port = b.Port
	case *unix.SockaddrInet6:
		s.Port = b.Port
	}
	ap, _ := netip.ParseAddrPort(addr) // tcpSocket parsed it already
	if d := dial(netip.AddrPortFrom(ap.Addr(), uint16(s.Port)).String()); d != "ok" {
		s.Err = "connect to itself: " + d
	}
	return s
}

// ifaces lists the network interfaces with their flags.
func ifaces() ([]Iface, error) {
	list, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := []Iface{}
	for _, i := range list {
		out = append(out, Iface{Name: i.Name, Flags: i.Flags.String()})
	}
	return out, nil
}

// fds lists /proc/self/fd with raw syscalls (see the package comment).
func fds() (map[string]FD, error) {
	dfd, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	var names []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.ReadDirent(dfd, buf)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	m := make(map[string]FD)
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd == dfd {
			continue
		}
		lbuf := make([]byte, 4096)
		n, err := unix.Readlink("/proc/self/fd/"+name, lbuf)
		if err != nil {
			return nil, fmt.Errorf("readlink fd %d: %w", fd, err)
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			return nil, fmt.Errorf("fcntl fd %d: %w", fd, err)
		}
		m[name] = FD{Target: string(lbuf[:n]), Cloexec: flags&unix.FD_CLOEXEC != 0}
	}
	return m, nil
}
