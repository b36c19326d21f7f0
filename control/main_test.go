// SPDX-License-Identifier: Apache-2.0

//go:build linux

package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/fakesup"
	"github.com/udsvisor/udsvisor/internal/testutil"
	"github.com/udsvisor/udsvisor/sockets"
	"github.com/udsvisor/udsvisor/supervisor"
)

// helperEnv switches the test binary into a one-request HTTP client, run
// as a test user so that the server sees that user's credentials.
const helperEnv = "UDSV_CONTROL_HELPER"

// Exit codes of the helper; a completed HTTP exchange is 0 whatever its
// status.
const (
	helperOK     = 0
	helperEACCES = 13
	helperOther  = 1
)

// helperRequest is what the helper sends, passed as JSON in helperEnv.
type helperRequest struct {
	Sock, Method, Path, Body string
	// Bind, when set, is the client's own socket address: a hostile name
	// must not change who the server thinks the client is.
	Bind string
	// Raw, when set, is sent as is instead of Method, Path and Body, and
	// whatever comes back until the server closes the connection is the
	// result's Body (and Status, if it starts with a status line).
	Raw string
}

// helperResult is what the helper prints.
type helperResult struct {
	Status int
	Body   string
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(runHelper(spec))
	}
	if arg := os.Getenv(floodEnv); arg != "" {
		os.Exit(runFlood(arg))
	}
	if spec := os.Getenv(lockoutEnv); spec != "" {
		os.Exit(runLockout(spec))
	}
	// sockets.Bind relies on the umask that `udsvisor up` sets at start.
	unix.Umask(0o077)
	os.Exit(m.Run())
}

func runHelper(spec string) int {
	var req helperRequest
	if err := json.Unmarshal([]byte(spec), &req); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return helperOther
	}
	var laddr *net.UnixAddr
	if req.Bind != "" {
		laddr = &net.UnixAddr{Name: req.Bind, Net: "unix"}
		defer os.Remove(req.Bind)
	}
	c, err := net.DialUnix("unix", laddr, &net.UnixAddr{Name: req.Sock, Net: "unix"})
	if err != nil {
		if errors.Is(err, syscall.EACCES) {
			return helperEACCES
		}
		fmt.Fprintln(os.Stderr, err)
		return helperOther
	}
	if req.Raw != "" {
		return rawRequest(c, req.Raw)
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) { return c, nil },
	}}
	hr, err := http.NewRequest(req.Method, "http://udsvisor"+req.Path, strings.NewReader(req.Body))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return helperOther
	}
	resp, err := client.Do(hr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return helperOther
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return helperOther
	}
	json.NewEncoder(os.Stdout).Encode(helperResult{Status: resp.StatusCode, Body: string(body)})
	return helperOK
}

// rawRequest writes raw on c and prints what comes back until the server
// closes the connection.
func rawRequest(c net.Conn, raw string) int {
	// A server that closes the connection at once (the root-only
	// socket refusing another uid) may do so before the write.
	if _, err := io.WriteString(c, raw); err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		fmt.Fprintln(os.Stderr, err)
		return helperOther
	}
	// Only keeps a server that never closes from hanging the test.
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	answer, err := io.ReadAll(c)
	// A server that closes a connection without reading what was sent
	// resets it.
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		fmt.Fprintf(os.Stderr, "after %q: %v\n", answer, err)
		return helperOther
	}
	res := helperResult{Body: string(answer)}
	fmt.Sscanf(res.Body, "HTTP/1.1 %d", &res.Status)
	json.NewEncoder(os.Stdout).Encode(res)
	return helperOK
}

// requestAs runs req as user u with exactly the supplementary groups
// given, and returns the helper's exit code and result.
func requestAs(t *testing.T, bin string, u testutil.User, groups []uint32, req helperRequest) (int, helperResult) {
	t.Helper()
	spec, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{helperEnv + "=" + string(spec)}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: append([]uint32{}, groups...)},
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ee.ExitCode() == helperOther {
			t.Fatalf("request as %s: %s", u.Name, stderr.String())
		}
		return ee.ExitCode(), helperResult{}
	default:
		t.Fatalf("run helper as %s: %v: %s", u.Name, err, stderr.String())
	}
	var res helperResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("helper as %s printed %q: %v", u.Name, out, err)
	}
	return helperOK, res
}

// newFake returns a fake supervisor with "web" running (pid 1000) and
// "db" stopped, and the services of more.
func newFake(more ...supervisor.Status) *fakesup.Supervisor {
	return fakesup.New(append([]supervisor.Status{
		{Name: "web", State: supervisor.Running, Pid: 1000, StartedAt: time.Unix(1700000000, 500_000_000)},
		{Name: "db", State: supervisor.Stopped},
	}, more...)...)
}

// testServer is a Server serving a socket made by sockets.Bind.
type testServer struct {
	// sock is the control socket, root the root-only one next to it.
	sock, root string
	srv        *Server
	// ino is the sockfs inode number of the listening socket, as ss and
	// /proc/PID/fd show it.
	ino string
	// stop shuts the server down and waits for Serve to return.
	stop func()
}

// startServer binds a control socket root:gid with mode in a fresh
// directory under /run, and the root-only socket next to it as `udsvisor
// up` does, and serves both with a Server on b; tweak, if not nil,
// adjusts the Server before it serves.
func startServer(t *testing.T, b Backend, opts Options, gid int, mode fs.FileMode, tweak func(*Server)) *testServer {
	t.Helper()
	testutil.RequireRoot(t)
	sock := filepath.Join(testutil.RunDir(t), "ctl", "control.sock")
	sl, err := sockets.Bind(sockets.Spec{Path: sock, UID: 0, GID: gid, Mode: mode, DirMode: 0o755, Backlog: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sl.Close(); err != nil {
			t.Error(err)
		}
	})
	nl, err := net.FileListener(sl.File())
	if err != nil {
		t.Fatal(err)
	}
	rl, err := BindRoot(sock)
	if err != nil {
		nl.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rl.Close(); err != nil {
			t.Error(err)
		}
	})
	rnl, err := net.FileListener(rl.File())
	if err != nil {
		nl.Close()
		t.Fatal(err)
	}
	srv := New(b, opts)
	if tweak != nil {
		tweak(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1) // read by stop, which may run after the test moved on
	go func() { done <- srv.Serve(ctx, nl, rnl) }()
	stopped := false
	link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", sl.File().Fd()))
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{sock: sock, root: rl.Spec().Path, srv: srv, ino: strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")}
	ts.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Serve did not return 30 s after its context ended")
		}
	}
	// Cleanups run last first: the server stops before its sockets close.
	t.Cleanup(ts.stop)
	return ts
}

// client returns an HTTP client for the server, running as root (the
// test process).
func (ts *testServer) client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", ts.sock)
		},
	}}
}

// do sends one request as root and returns the status and body.
func (ts *testServer) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	resp, b := ts.send(t, method, path, body, nil)
	return resp.StatusCode, b
}

// send sends one request as root with the given headers and returns the
// response, its body read.
func (ts *testServer) send(t *testing.T, method, path, body string, header http.Header) (*http.Response, string) {
	t.Helper()
	c := ts.client()
	defer c.CloseIdleConnections()
	req, err := http.NewRequest(method, "http://udsvisor"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}
