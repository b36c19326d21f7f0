// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/internal/testutil"
	"github.com/udsvisor/udsvisor/internal/testutil/testapp"
)

// testApp is the path of integration/testapp, built by TestMain into a
// directory that test users can reach.
var testApp string

func TestMain(m *testing.M) {
	// What udsvisor up does first; the sockets package relies on it.
	unix.Umask(0o077)
	os.Exit(testutil.RunBuilt(m, []string{"github.com/udsvisor/udsvisor/integration/testapp"}, func(_ string, bins []string) error {
		testApp = bins[0]
		return nil
	}))
}

// syncBuffer collects the log so a test can look for a child's output
// and print the log when it fails.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written broadcast // notified at each write
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.written.notify()
	return b.buf.Write(p)
}

// waitFor waits until the log satisfies cond, looking again at each
// write.
func (b *syncBuffer) waitFor(t *testing.T, what string, cond func(log string) bool) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		written := b.written.wait()
		if cond(b.String()) {
			return
		}
		select {
		case <-written:
		case <-timeout.C:
			t.Fatalf("no %s in the log after 10 s", what)
		}
	}
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// harness is one supervisor running in the test process.
type harness struct {
	t    *testing.T
	dir  string
	sup  *Supervisor
	logs *syncBuffer
	stop func() error // cancels Run and returns its error
}

// expand replaces $DIR (a fresh directory under /run) and $APP (the test
// app) in a config text.
func expand(text, dir string) string {
	return strings.NewReplacer("$DIR", dir, "$APP", testApp).Replace(text)
}

func parse(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.toml", []byte(text))
	if err != nil {
		t.Fatalf("config:\n%v\n%s", err, text)
	}
	return cfg
}

func newLogger(w io.Writer) *zap.Logger {
	enc := zap.NewDevelopmentEncoderConfig()
	return zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), zap.DebugLevel))
}

// start runs a supervisor on the config text and waits until every
// service has been started.
func start(t *testing.T, text string) *harness {
	t.Helper()
	return startIn(t, testutil.RunDir(t), text)
}

// startIn is start with $DIR set to dir.
func startIn(t *testing.T, dir, text string) *harness {
	t.Helper()
	testutil.RequireRoot(t)
	return startCfg(t, dir, parse(t, expand(text, dir)))
}

// startCfg runs a supervisor on cfg, whose sockets are under dir, and
// waits until every service has been started.
func startCfg(t *testing.T, dir string, cfg *config.Config) *harness {
	t.Helper()
	return run(t, dir, cfg, nil, true)
}

// run runs a supervisor on cfg, after prepare (if not nil) has set what
// a test changes in it, and waits until every service has been started
// if waitStarted.
func run(t *testing.T, dir string, cfg *config.Config, prepare func(*Supervisor), waitStarted bool) *harness {
	t.Helper()
	h := &harness{t: t, dir: dir, logs: &syncBuffer{}}
	h.sup = New(cfg, newLogger(h.logs), Options{})
	if prepare != nil {
		prepare(h.sup)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1) // Run returns once
	started := make(chan struct{})
	go func() { errc <- h.sup.Run(ctx, func() { close(started) }) }()
	if waitStarted {
		select {
		case <-started:
		case err := <-errc:
			cancel()
			t.Fatalf("Run: %v\nlog:\n%s", err, h.logs)
		}
	}
	var once sync.Once
	var runErr error
	h.stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-errc
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := h.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
		if t.Failed() {
			t.Logf("supervisor log:\n%s", h.logs)
		}
	})
	return h
}

func (h *harness) status(name string) Status {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := h.sup.Status(ctx, name)
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

// waitState waits until the service is in state want and returns its
// status.
func (h *harness) waitState(name string, want State) Status {
	h.t.Helper()
	// A state with a process counts once the process runs the command.
	process := want == Starting || want == Running
	return h.waitFor(name, "state "+string(want), func(st Status) bool {
		return st.State == want && (!process || st.Pid != 0)
	})
}

// waitFor waits until the service's status satisfies cond, looking again
// each time a service publishes a new state, and returns that status.
func (h *harness) waitFor(name, what string, cond func(Status) bool) Status {
	h.t.Helper()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for {
		changed := h.sup.changed.wait() // before the look, so no change is missed
		st := h.status(name)
		if cond(st) {
			return st
		}
		select {
		case <-changed:
		case <-timeout.C:
			h.t.Fatalf("%s: still %s (pid %d, failures %d) after 20 s; want %s", name, st.State, st.Pid, st.Failures, what)
		}
	}
}

// quiet fails the test if any service publishes a new state within d.
func (h *harness) quiet(d time.Duration) {
	h.t.Helper()
	select {
	case <-h.sup.changed.wait():
		h.t.Errorf("a service changed within %v; want none", d)
	case <-time.After(d):
	}
}

// waitGone waits until each of pids has ended (exited, or a zombie), on
// a pidfd each: the kernel says when, whoever the parent.
func waitGone(t *testing.T, timeout time.Duration, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if errors.Is(err, unix.ESRCH) {
			continue // gone and reaped
		}
		if err != nil {
			t.Fatal(os.NewSyscallError("pidfd_open", err))
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, int(max(time.Until(deadline), 0).Milliseconds()))
			if errors.Is(err, unix.EINTR) {
				continue
			}
			unix.Close(fd)
			if err != nil {
				t.Fatal(os.NewSyscallError("poll", err))
			}
			if n == 0 {
				t.Fatalf("pid %d still alive after %v", pid, timeout)
			}
			break
		}
	}
}

// unixClient speaks HTTP to the Unix socket at path, one connection per
// request so that each request is a new connect(2).
func unixClient(path string) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
		},
	}
}

func getReport(path string) (testapp.Report, error) {
	var r testapp.Report
	resp, err := unixClient(path).Get("http://udsvisor-test/")
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("GET / on %s: %s", path, resp.Status)
	}
	return r, json.NewDecoder(resp.Body).Decode(&r)
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the ")" that ends the command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}
