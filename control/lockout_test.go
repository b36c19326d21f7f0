// SPDX-License-Identifier: Apache-2.0

//go:build linux

package control

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/client"
	"github.com/udsvisor/udsvisor/internal/fakesup"
	"github.com/udsvisor/udsvisor/internal/testutil"
)

// lockoutEnv switches the test binary into one user's share of the T28
// flood, described by a lockoutSpec in JSON. It runs until its stdin
// closes.
const lockoutEnv = "UDSV_CONTROL_LOCKOUT"

// lockoutSpec is one flooding process.
type lockoutSpec struct {
	Sock string
	// Hold connections cycle through lockoutKinds; Churn more are idle.
	// Each is opened again as soon as the server closes it, so the
	// flood never lets go of what it got.
	Hold, Churn int
}

// lockoutKinds are what a flooding connection sends, then never more.
var lockoutKinds = []string{
	// Idle: nothing at all.
	"",
	// Headers that never end.
	"GET /v1/services HTTP/1.1\r\nHost: udsvisor\r\nX-Slow: ",
	// Headers, then a body that never comes: an outsider is refused
	// (403), an operator's request waits for its body.
	"POST /v1/services/web/restart HTTP/1.1\r\nHost: udsvisor\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
	// A body announced (under net/http's 256 KiB drain) and never sent,
	// on a request answered without reading it: 403 for an outsider, 200
	// for an operator.
	"GET /v1/services HTTP/1.1\r\nHost: udsvisor\r\nContent-Length: 200000\r\n\r\n{",
}

func runLockout(arg string) int {
	var spec lockoutSpec
	if err := json.Unmarshal([]byte(arg), &spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return helperOther
	}
	for i := range spec.Hold + spec.Churn {
		kind := ""
		if i < spec.Hold {
			kind = lockoutKinds[i%len(lockoutKinds)]
		}
		go holdConnection(spec.Sock, kind)
	}
	io.Copy(io.Discard, os.Stdin)
	return helperOK
}

// holdConnection keeps one connection to sock open, sending kind on it
// and reading (never answering) whatever comes back, and connects again
// whenever the server closes it.
func holdConnection(sock, kind string) {
	for {
		c, err := net.Dial("unix", sock)
		if err != nil {
			// A full backlog (EAGAIN): the flood keeps it full.
			time.Sleep(5 * time.Millisecond)
			continue
		}
		io.WriteString(c, kind)
		io.Copy(io.Discard, c)
		c.Close()
	}
}

// publicConns returns how many connections the server holds on its
// control socket (not the root-only one).
func (ts *testServer) publicConns() int {
	if ll := ts.srv.public.Load(); ll != nil {
		return len(ll.sem)
	}
	return 0
}

// TestT28FloodFromManyUsersNeverLocksOutRoot is the test: eight
// users flood a control socket loosened to 0666 with every kind of
// connection that used to hold a slot (idle, headers that never end, a
// body that never comes, a refusal whose body is never sent), holding
// all 256 of its slots and keeping its backlog full, while the CPUs are
// busy; root's status (the client `ctl status` uses) answers within 1 s,
// five times in a row. The server runs with production timeouts and
// caps. Four of the users are in control_group, so their requests are
// authorised and the server really waits for their bodies.
func TestT28FloodFromManyUsersNeverLocksOutRoot(t *testing.T) {
	us := ensureUsers(t)
	bin := testutil.CopyTestBinary(t)
	b := newFake()
	ts := startServer(t, b, Options{ControlGID: us.ctlGID, StatusGID: -1}, us.ctlGID, 0o666, nil)

	// The CPUs are busy: a spinning process per CPU and one more, and a
	// spinning goroutine per CPU in this process, which also serves.
	for range runtime.NumCPU() + 1 {
		spin := exec.Command("/bin/sh", "-c", "while :; do :; done")
		if err := spin.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { spin.Process.Kill(); spin.Wait() })
	}
	var stop atomic.Bool
	t.Cleanup(func() { stop.Store(true) })
	for range runtime.NumCPU() {
		go func() {
			for n := 0; !stop.Load(); n++ {
			}
		}()
	}

	const users = 8
	for i := 1; i <= users; i++ {
		u := testutil.EnsureUser(t, fmt.Sprintf("udsv-f%d", i))
		groups := []uint32{}
		if i > users/2 {
			groups = []uint32{uint32(us.ctlGID)}
		}
		spec, err := json.Marshal(lockoutSpec{Sock: ts.sock, Hold: DefaultMaxConnsPerUID, Churn: 250})
		if err != nil {
			t.Fatal(err)
		}
		startFlooder(t, bin, u, groups, lockoutEnv+"="+string(spec))
	}

	// The flood holds every slot of the control socket: without a way
	// of its own, root would wait in a full backlog (or find it full).
	testutil.Eventually(t, 60*time.Second, func() error {
		if n := ts.publicConns(); n < DefaultMaxConns {
			return fmt.Errorf("the flood holds %d of the control socket's %d slots", n, DefaultMaxConns)
		}
		return nil
	})

	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for i := range 5 {
		<-tick.C
		held, queued := ts.publicConns(), acceptQueue(t, ts)
		var out strings.Builder
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		err := client.New(ts.sock).ListTable(ctx, &out)
		took := time.Since(start)
		cancel()
		t.Logf("root's status #%d: %v (the flood held %d slots, %d connections queued)", i+1, took, held, queued)
		if err != nil {
			t.Fatalf("root's status #%d during the flood: %v after %v", i+1, err, took)
		}
		if took > time.Second {
			t.Errorf("root's status #%d took %v during the flood, want at most 1s", i+1, took)
		}
		if !strings.Contains(out.String(), "web") {
			t.Errorf("root's status #%d printed %q", i+1, out.String())
		}
	}
	if n := ts.publicConns(); n < DefaultMaxConns*9/10 {
		t.Errorf("after root's requests the flood holds %d of %d slots; the test no longer floods", n, DefaultMaxConns)
	}
}

// TestT28BodyNeverSent: a request whose headers arrive but whose body
// never does is answered 408 once the request's read deadline passes,
// and its connection closes, which frees the only slot.
func TestT28BodyNeverSent(t *testing.T) {
	b := newFake()
	ts := startServer(t, b, Options{ControlGID: -1, StatusGID: -1, MaxConns: 1}, 0, 0o600,
		func(s *Server) { s.readTimeout = 300 * time.Millisecond })
	c, err := net.Dial("unix", ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /v1/services/web/restart HTTP/1.1\r\nHost: udsvisor\r\nContent-Length: 10\r\n\r\n{")
	// The deadline only keeps a broken server from hanging the test.
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	answer, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("after %q: %v; want the server to answer and close", answer, err)
	}
	if !strings.HasPrefix(string(answer), "HTTP/1.1 408 ") || !strings.Contains(string(answer), "Connection: close") {
		t.Errorf("answer %q, want 408 with Connection: close", answer)
	}
	if b.Service("web").Restarts != 0 {
		t.Error("the restart ran without its body")
	}
	if code, body := ts.do(t, "GET", "/v1/services", ""); code != http.StatusOK {
		t.Errorf("after the slow body: %d %s", code, body)
	}
}

// TestT28AnswersNeverWaitForTheBody: an answer given without reading the
// body (a refusal, an unknown path, a read that ignores it, a malformed
// body) goes out at once and the server closes the connection, instead
// of reading up to 256 KiB of a body that never comes first. The body's
// own deadline is a minute here, so nothing but that rule can end these
// requests. A refusal closes the connection even without a body, so
// that the refused caller cannot keep its slot as an idle keep-alive
// connection (the idle timeout is a minute too).
func TestT28AnswersNeverWaitForTheBody(t *testing.T) {
	us := ensureUsers(t)
	bin := testutil.CopyTestBinary(t)
	ts := startServer(t, newFake(), Options{ControlGID: us.ctlGID, StatusGID: us.roGID, MaxConns: 1}, us.ctlGID, 0o666,
		func(s *Server) { s.readTimeout, s.idleTimeout = time.Minute, time.Minute })
	const announced = "Host: udsvisor\r\nContent-Type: application/json\r\nContent-Length: 200000\r\n\r\n{"
	tests := []struct {
		name   string
		who    testutil.User
		groups []uint32
		raw    string
		status int
	}{
		{"refused", us.outsider, []uint32{}, "POST /v1/services/web/restart HTTP/1.1\r\n" + announced, http.StatusForbidden},
		{"refused without a body", us.outsider, []uint32{}, "GET /v1/services HTTP/1.1\r\nHost: udsvisor\r\n\r\n", http.StatusForbidden},
		{"refused by route", us.reader, []uint32{uint32(us.roGID)}, "POST /v1/reload HTTP/1.1\r\n" + announced, http.StatusForbidden},
		{"unknown path", us.operator, []uint32{uint32(us.ctlGID)}, "POST /v1/nosuch HTTP/1.1\r\n" + announced, http.StatusNotFound},
		{"wrong method", us.operator, []uint32{uint32(us.ctlGID)}, "PUT /v1/reload HTTP/1.1\r\n" + announced, http.StatusMethodNotAllowed},
		{"body ignored", us.operator, []uint32{uint32(us.ctlGID)}, "GET /v1/services HTTP/1.1\r\n" + announced, http.StatusOK},
		{"malformed body", us.operator, []uint32{uint32(us.ctlGID)}, "POST /v1/reload HTTP/1.1\r\n" + announced + "x", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			code, res := requestAs(t, bin, tt.who, tt.groups, helperRequest{Sock: ts.sock, Raw: tt.raw})
			took := time.Since(start)
			if code != helperOK || res.Status != tt.status {
				t.Fatalf("exit %d, answer %q; want %d", code, res.Body, tt.status)
			}
			if !strings.Contains(res.Body, "Connection: close") {
				t.Errorf("answer %q without Connection: close", res.Body)
			}
			// net/http waits 500 ms after an answer before it closes.
			if took > 10*time.Second {
				t.Errorf("answered and closed after %v", took)
			}
			// The connection was closed, so the only slot is free.
			if code, body := ts.do(t, "GET", "/v1/services", ""); code != http.StatusOK {
				t.Errorf("after it: %d %s", code, body)
			}
		})
	}
}

// TestT28RootSocket: the root-only socket is root:root 0600 next to the
// control socket; another user cannot connect, and if its mode is
// loosened, the server still closes that user's connection unanswered.
// Root's client takes it, so root is answered while every slot of the
// control socket is held.
func TestT28RootSocket(t *testing.T) {
	us := ensureUsers(t)
	bin := testutil.CopyTestBinary(t)
	ts := startServer(t, newFake(), Options{ControlGID: us.ctlGID, StatusGID: -1, MaxConns: 1}, us.ctlGID, 0o666,
		func(s *Server) { s.readHeaderTimeout = time.Minute })
	if ts.root != client.RootSocket(ts.sock) {
		t.Errorf("root-only socket at %s, want %s", ts.root, client.RootSocket(ts.sock))
	}
	var st unix.Stat_t
	if err := unix.Lstat(ts.root, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode != unix.S_IFSOCK|0o600 || st.Uid != 0 || st.Gid != 0 {
		t.Errorf("root-only socket: mode %o, owner %d:%d; want a socket 0600 root:root", st.Mode, st.Uid, st.Gid)
	}

	get := helperRequest{Sock: ts.root, Raw: "GET /v1/services HTTP/1.1\r\nHost: udsvisor\r\n\r\n"}
	if code, _ := requestAs(t, bin, us.operator, []uint32{uint32(us.ctlGID)}, get); code != helperEACCES {
		t.Errorf("operator on the root-only socket: exit %d, want EACCES", code)
	}
	if err := os.Chmod(ts.root, 0o666); err != nil {
		t.Fatal(err)
	}
	if code, res := requestAs(t, bin, us.operator, []uint32{uint32(us.ctlGID)}, get); code != helperOK || res.Body != "" {
		t.Errorf("operator on the root-only socket loosened to 0666: exit %d, answer %q; want the connection closed unanswered", code, res.Body)
	}

	// An idle connection holds the control socket's only slot.
	idle, err := net.Dial("unix", ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := ts.publicConns(); n != 1 {
			return fmt.Errorf("%d connections on the control socket, want 1", n)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.New(ts.sock).List(ctx); err != nil {
		t.Errorf("root's client while the control socket is full: %v", err)
	}
}

// slowStop is a backend whose Stop takes a while, as a real one waits for
// the process, and fails if the request's context ends first.
type slowStop struct {
	*fakesup.Supervisor
	took time.Duration
}

func (b slowStop) Stop(ctx context.Context, name string) error {
	select {
	case <-ctx.Done():
		return fmt.Errorf("stop %s: %w", name, ctx.Err())
	case <-time.After(b.took):
	}
	return b.Supervisor.Stop(ctx, name)
}

// TestT28ReadDeadlineEndsWithTheBody: the read deadline of a request
// ends once its body is in, so that an action that takes longer (a stop
// waits for stop_timeout) is neither cut nor cancelled.
func TestT28ReadDeadlineEndsWithTheBody(t *testing.T) {
	b := slowStop{Supervisor: newFake(), took: time.Second}
	ts := startServer(t, b, Options{ControlGID: -1, StatusGID: -1}, 0, 0o600,
		func(s *Server) { s.readTimeout = 100 * time.Millisecond })
	if code, body := ts.do(t, "POST", "/v1/services/web/stop", "{}"); code != http.StatusOK {
		t.Errorf("stop with a body, longer than the read deadline: %d %s", code, body)
	}
	if st := b.Service("web").State; st != "stopped" {
		t.Errorf("web is %s after the stop", st)
	}
}
