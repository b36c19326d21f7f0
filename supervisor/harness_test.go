package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
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
)

// testApp is the path of integration/testapp, built by TestMain into a
// directory that test users can reach.
var testApp string

func TestMain(m *testing.M) {
	// What udsvisor up does first; the sockets package relies on it.
	unix.Umask(0o077)
	dir, err := os.MkdirTemp("", "udsvisor-supervisor-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testApp, err = testutil.Build(dir, "github.com/udsvisor/udsvisor/integration/testapp")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects the log so a test can look for a child's output
// and print the log when it fails.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
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

// startCfg runs a supervisor on cfg, whose sockets are under dir.
func startCfg(t *testing.T, dir string, cfg *config.Config) *harness {
	t.Helper()
	h := &harness{t: t, dir: dir, logs: &syncBuffer{}}
	h.sup = New(cfg, newLogger(h.logs), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1) // Run returns once
	started := make(chan struct{})
	go func() { errc <- h.sup.Run(ctx, func() { close(started) }) }()
	select {
	case <-started:
	case err := <-errc:
		cancel()
		t.Fatalf("Run: %v\nlog:\n%s", err, h.logs)
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
	var st Status
	testutil.Eventually(h.t, 20*time.Second, func() error {
		st = h.status(name)
		if st.State != want {
			return fmt.Errorf("%s is %s (pid %d, failures %d), want %s", name, st.State, st.Pid, st.Failures, want)
		}
		return nil
	})
	return st
}

// report is integration/testapp's answer to GET /.
type report struct {
	Pid        int      `json:"pid"`
	UID        int      `json:"uid"`
	GID        int      `json:"gid"`
	Groups     []int    `json:"groups"`
	Socket     string   `json:"socket"`
	Names      []string `json:"names"`
	ListenPID  string   `json:"listen_pid"`
	ListenFDs  string   `json:"listen_fds"`
	FDNames    string   `json:"listen_fdnames"`
	Env        []string `json:"env"`
	Grandchild int      `json:"grandchild"`
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

func getReport(path string) (report, error) {
	var r report
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
