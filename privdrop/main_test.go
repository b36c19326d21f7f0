// SPDX-License-Identifier: Apache-2.0

//go:build linux

package privdrop_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
	"github.com/udsvisor/udsvisor/privdrop"
)

// envParentRole makes the test binary act as a stand-in supervisor that
// launches the spec in this variable (JSON) and then waits to be killed;
// the Pdeathsig, tty and signal tests need a parent they can kill, give a
// terminal or spoil the signal state of without touching the test process
// (signal.Reset does not undo signal.Ignore).
const envParentRole = "PRIVDROP_TEST_PARENT"

// envParentHostile set to 1 makes the stand-in ignore SIGHUP, SIGPIPE and
// SIGTSTP and fork with SIGTERM and SIGUSR1 blocked.
const envParentHostile = "PRIVDROP_TEST_PARENT_HOSTILE"

// probePath is the test service binary, built by TestMain into a 0755
// directory under /run so that a dropped user can exec it. It is written
// once, before any test runs.
var probePath string

func TestMain(m *testing.M) {
	// This binary is also the launch helper that Prepare re-executes via
	// /proc/self/exe: it links privdrop, so the constructor in
	// helper_linux.c takes over before TestMain would run.
	if spec := os.Getenv(envParentRole); spec != "" {
		parentRole(spec, os.Getenv(envParentHostile) == "1")
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("/run", "udsvisor-privdrop-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if probePath, err = testutil.Build(dir, "./testdata/probe"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// parentRole launches the spec with no sockets, stdout and stderr passed
// through, and then keeps the forking thread alive until it is killed.
func parentRole(specJSON string, hostile bool) {
	var spec privdrop.Spec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "parent role:", err)
		os.Exit(3)
	}
	l, err := privdrop.Prepare("", &spec, nil, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "parent role:", err)
		os.Exit(3)
	}
	var block []unix.Signal
	if hostile {
		// SIG_IGN survives fork and exec; a blocked mask survives too.
		signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE, syscall.SIGTSTP)
		block = []unix.Signal{unix.SIGTERM, unix.SIGUSR1}
	}
	runtime.LockOSThread() // never unlocked: Pdeathsig watches this thread
	if err := startLocked(l.Cmd(), block, false); err != nil {
		l.Abort()
		fmt.Fprintln(os.Stderr, "parent role:", err)
		os.Exit(3)
	}
	if err := l.AfterStart(); err != nil {
		fmt.Fprintln(os.Stderr, "parent role:", err)
		os.Exit(3)
	}
	for {
		time.Sleep(time.Hour)
	}
}

// report mirrors testdata/probe's Report.
type report struct {
	PID        int            `json:"pid"`
	UID        int            `json:"uid"`
	EUID       int            `json:"euid"`
	GID        int            `json:"gid"`
	EGID       int            `json:"egid"`
	Groups     []int          `json:"groups"`
	Env        []string       `json:"env"`
	FDs        map[string]fdr `json:"fds"`
	Cwd        string         `json:"cwd"`
	Umask      int            `json:"umask"`
	TTY        string         `json:"tty"`
	Activation []string       `json:"activation"`
	Bind       string         `json:"bind"`
	Ifaces     []iface        `json:"ifaces"`
	Dial       string         `json:"dial"`
	Serve      []served       `json:"serve"`
	Err        string         `json:"err"`
}

type iface struct {
	Name  string `json:"name"`
	Flags string `json:"flags"`
}

type served struct {
	Addr string `json:"addr"`
	Port int    `json:"port"`
	Err  string `json:"err"`
}

type fdr struct {
	Target  string `json:"target"`
	Cloexec bool   `json:"cloexec"`
}

// blockingPipe returns a pipe in blocking mode. os.Pipe's ends are
// non-blocking, and O_NONBLOCK on the probe's stdout would make its Go
// runtime open a poller (two more fds) at init.
func blockingPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	r, w = os.NewFile(uintptr(p[0]), "pipe-r"), os.NewFile(uintptr(p[1]), "pipe-w")
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// listeners makes one blocking listening Unix socket per name in dir and
// returns them with their "socket:[ino]" fd targets.
func listeners(t *testing.T, dir string, names ...string) ([]*os.File, []string) {
	t.Helper()
	var files []*os.File
	var targets []string
	for _, name := range names {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(fd), name)
		t.Cleanup(func() { f.Close() })
		if err := unix.Bind(fd, &unix.SockaddrUnix{Name: filepath.Join(dir, name+".sock")}); err != nil {
			t.Fatal(err)
		}
		if err := unix.Listen(fd, 16); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		targets = append(targets, fmt.Sprintf("socket:[%d]", st.Ino))
	}
	return files, targets
}

// probeSpec is a spec that runs the probe as user u until it is killed.
func probeSpec(t *testing.T, u testutil.User, n int, fdnames string) *privdrop.Spec {
	t.Helper()
	return &privdrop.Spec{
		Path: probePath,
		Args: []string{"probe", "block"},
		// GODEBUG keeps the probe's runtime from holding cgroup files
		// open, which would muddle TestT10FDs's exact fd list.
		Env: []string{"PATH=/usr/bin:/bin", "GODEBUG=containermaxprocs=0",
			"LISTEN_FDS=" + strconv.Itoa(n), "LISTEN_FDNAMES=" + fdnames},
		Dir:    testutil.RunDir(t),
		UID:    u.UID,
		GID:    u.GID,
		Umask:  0o027,
		NumFDs: n,
	}
}
