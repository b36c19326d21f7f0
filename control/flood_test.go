package control

import (
	"bufio"
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
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return helperOther
	}
	rl.Cur = rl.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		fmt.Fprintln(os.Stderr, err)
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
	bin := helperBinary(t)
	raiseNofile(t, floodConns+256)
	b := newFake()
	ts := startServer(t, b, Options{ControlGID: us.ctlGID, StatusGID: -1}, us.ctlGID, 0o666,
		func(s *Server) { s.readHeaderTimeout = time.Minute })

	flood := exec.Command(bin)
	flood.Env = []string{floodEnv + "=" + strconv.Itoa(floodConns) + ":" + ts.sock}
	flood.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: us.outsider.UID, Gid: us.outsider.GID, Groups: []uint32{}},
	}
	hold, err := flood.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := flood.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	flood.Stderr = &stderr
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hold.Close()
		flood.Process.Kill()
		flood.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("flood as %s: %v: %s", us.outsider.Name, err, stderr.String())
	}
	if got := strings.TrimSpace(line); got != strconv.Itoa(floodConns) {
		t.Fatalf("flood opened %s connections, want %d: the server stopped accepting (%s)", got, floodConns, stderr.String())
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

// raiseNofile makes sure RLIMIT_NOFILE's hard limit, which the flooding
// child inherits and raises its soft limit to, is at least n.
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
