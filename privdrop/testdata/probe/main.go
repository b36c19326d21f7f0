// Command probe is the service that privdrop's tests launch. It reports
// what it was started with as one JSON line on stdout, then exits or, with
// the argument "block", waits to be killed so that the test can read
// /proc/PID.
//
// The test counts the fds the probe holds, so the probe opens none of its
// own while it blocks: it reads /proc with raw syscalls and sleeps with
// nanosleep, because os.Open and time.Sleep start the runtime's poller
// (an epoll fd and an eventfd). The runtime's cgroup files (Go 1.25+)
// stay closed because the test sets GODEBUG=containermaxprocs=0.
package main

import (
	"encoding/json"
	"fmt"
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

	block := false
	for _, arg := range os.Args[1:] {
		if arg == "block" {
			block = true
		} else if addr, ok := strings.CutPrefix(arg, "bind="); ok {
			r.Bind = bind(addr)
		}
	}

	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		os.Exit(2)
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
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return fmt.Sprintf("bad address %q", addr)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err.Error()
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		return err.Error()
	}
	return "ok"
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
