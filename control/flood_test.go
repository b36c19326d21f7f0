// SPDX-License-Identifier: Apache-2.0

//go:build linux

package control

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// floodEnv switches the test binary into a client that opens
// "COUNT:SOCKET" idle connections, prints how many it got, and holds them
// until its stdin closes.
const floodEnv = "UDSV_CONTROL_FLOOD"

// floodConns is the catalogue's T18 flood.
const floodConns = 5000

func runFlood(arg string) int {
	n, sock, ok := strings.Cut(arg, ":")
	count, err := strconv.Atoi(n)
	if !ok || err != nil {
		fmt.Fprintf(os.Stderr, "%s=%q: want COUNT:SOCKET\n", floodEnv, arg)
		return helperOther
	}
	// Bounds a flood that cannot complete (a server that stops
	// accepting): the test then fails on the count.
	deadline := time.Now().Add(60 * time.Second)
	opened := 0
	for opened < count && time.Now().Before(deadline) {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			fmt.Fprintf(os.Stderr, "socket #%d: %v\n", opened, err)
			return helperOther
		}
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: sock})
		if err == unix.EAGAIN {
			// A full backlog: wait for the server to accept.
			unix.Close(fd)
			unix.Nanosleep(&unix.Timespec{Nsec: 1e6}, nil)
			continue
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "connect #%d: %v\n", opened, err)
			return helperOther
		}
		opened++ // held open, idle, until we exit
	}
	fmt.Println(opened)
	io.Copy(io.Discard, os.Stdin)
	return helperOK
}

// TestT18IdleFloodDoesNotLockOutRoot: an unprivileged user opens 5,000
// idle connections to a control socket loosened to 0666; root is still
// answered at once. The server's header timeout is raised to a minute so
// that idle connections do not free their slots by themselves: only the
// per-uid cap keeps the user from holding every slot and the backlog,
// where root would wait behind it.
func TestT18IdleFloodDoesNotLockOutRoot(t *testing.T) {
	us := ensureUsers(t)
	bin := testutil.CopyTestBinary(t)
	raiseNofile(t, floodConns+256)
	b := newFake()
	ts := startServer(t, b, Options{ControlGID: us.ctlGID, StatusGID: -1}, us.ctlGID, 0o666,
		func(s *Server) { s.readHeaderTimeout = time.Minute })

	flood, out := startFlooder(t, bin, us.outsider, []uint32{}, floodEnv+"="+strconv.Itoa(floodConns)+":"+ts.sock)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("flood as %s: %v (its stderr is logged)", us.outsider.Name, err)
	}
	if got := strings.TrimSpace(line); got != strconv.Itoa(floodConns) {
		t.Fatalf("flood opened %s connections, want %d: the server stopped accepting (its stderr is logged)", got, floodConns)
	}
	// The server has worked through the backlog: a connect now reaches
	// it instead of failing with EAGAIN.
	testutil.Eventually(t, 30*time.Second, func() error {
		if q := acceptQueue(t, ts); q != 0 {
			return fmt.Errorf("accept queue of %s is %d, want 0", ts.sock, q)
		}
		return nil
	})

	// Generous next to the catalogue's 2 s, and far below the minute an
	// idle connection keeps its slot.
	c := ts.client()
	c.Timeout = 10 * time.Second
	defer c.CloseIdleConnections()
	resp, err := c.Post("http://udsvisor/v1/services/web/restart", "application/json", nil)
	if err != nil {
		t.Fatalf("root during the flood: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || b.Service("web").Restarts != 1 {
		t.Errorf("root during the flood: %d, restarts %d; want 200 and 1", resp.StatusCode, b.Service("web").Restarts)
	}
	// The flood is still there: every connection is still open.
	fds, err := testutil.ProcFDs(flood.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if sockets := countPrefix(fds, "socket:"); sockets < floodConns {
		t.Errorf("the flooding process holds %d sockets, want at least %d", sockets, floodConns)
	}
}

// startFlooder runs bin, a copy of the test binary, as user u with
// exactly the supplementary groups given and with env, one of the flood
// helpers' variables. The helper's stdin is held open until the test ends
// (it exits when stdin closes); what it wrote to stderr is logged then.
// It returns the helper and its stdout.
func startFlooder(t *testing.T, bin string, u testutil.User, groups []uint32, env string) (*exec.Cmd, io.Reader) {
	t.Helper()
	flood := exec.Command(bin)
	flood.Env = []string{env}
	flood.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: append([]uint32{}, groups...)},
	}
	hold, err := flood.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := flood.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	flood.Stderr = &stderr
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hold.Close()
		flood.Process.Kill()
		flood.Wait()
		if stderr.Len() > 0 {
			t.Logf("flood as %s: %s", u.Name, stderr.String())
		}
	})
	return flood, out
}

// raiseNofile makes sure RLIMIT_NOFILE's hard limit is at least n. The
// flooding child inherits it, and raises its soft limit to it at start
// as every Go program does (go.dev/issue/46279).
func raiseNofile(t *testing.T, n uint64) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	if old.Max >= n {
		return
	}
	raised := syscall.Rlimit{Cur: old.Cur, Max: n}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
		t.Fatalf("raise RLIMIT_NOFILE to %d: %v", n, err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

func countPrefix(m map[int]string, prefix string) int {
	n := 0
	for _, v := range m {
		if strings.HasPrefix(v, prefix) {
			n++
		}
	}
	return n
}
