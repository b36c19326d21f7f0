// SPDX-License-Identifier: Apache-2.0

//go:build linux

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/internal/testutil"
	"github.com/udsvisor/udsvisor/supervisor"
)

// stack is one test's udsvisor: a fresh directory under /run holding its
// config, its control socket and the services' sockets, and the running
// `udsvisor up`.
type stack struct {
	dir     string // root:root 0755, removed after the test
	cfg     string // dir/services.toml
	ctlSock string
	up      *testutil.Up
}

// startStack writes services (TOML [services.*] tables in which $DIR,
// $APP and $APPDIR stand for the stack's directory, the Go test app and
// the directory of testdata's Python apps) under a [supervisor] table of
// its own, runs `udsvisor up` on it and waits until every service is
// running.
func startStack(t *testing.T, services string) *stack {
	t.Helper()
	testutil.RequireRoot(t)
	s := &stack{dir: testutil.RunDir(t)}
	s.cfg = filepath.Join(s.dir, "services.toml")
	s.ctlSock = filepath.Join(s.dir, "ctl", "control.sock")
	text := fmt.Sprintf("[supervisor]\ncontrol_socket = %q\n\n", s.ctlSock) +
		strings.NewReplacer("$DIR", s.dir, "$APPDIR", built.appDir, "$APP", built.testApp).Replace(services)
	// udsvisor refuses a config that is not root's or is writable by
	// others, whatever the test's umask.
	if err := os.WriteFile(s.cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(built.udsvisor, "check", "-c", s.cfg).CombinedOutput(); err != nil {
		t.Fatalf("udsvisor check: %v\n%s\nconfig:\n%s", err, out, text)
	}
	s.up = testutil.StartUp(t, built.udsvisor, s.cfg, testutil.UpOptions{})
	s.up.WaitUp(t)
	svcs, err := s.services()
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range svcs {
		s.up.WaitState(t, svc.Name, string(supervisor.Running))
	}
	return s
}

// ctl runs udsvisor ctl on the stack's control socket.
func (s *stack) ctl(args ...string) (string, error) {
	out, err := exec.Command(built.udsvisor, append([]string{"ctl", "-s", s.ctlSock}, args...)...).CombinedOutput()
	return string(out), err
}

// services is `udsvisor ctl -s SOCK status --json`.
func (s *stack) services() ([]api.Service, error) {
	cmd := exec.Command(built.udsvisor, "ctl", "-s", s.ctlSock, "status", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("ctl status --json: %w: %s", err, stderr.String())
	}
	var svcs []api.Service
	if err := json.Unmarshal(stdout.Bytes(), &svcs); err != nil {
		return nil, fmt.Errorf("ctl status --json printed %q: %w", stdout.String(), err)
	}
	return svcs, nil
}

// service returns one service's status.
func (s *stack) service(name string) (api.Service, error) {
	svcs, err := s.services()
	if err != nil {
		return api.Service{}, err
	}
	for _, svc := range svcs {
		if svc.Name == name {
			return svc, nil
		}
	}
	return api.Service{}, fmt.Errorf("no service %s in ctl status", name)
}

// proxyConfig is what `udsvisor proxy KIND -c cfgFile --listen listen`
// prints: the nginx (http{} context) or Apache configuration that the
// front servers of these tests run on.
func proxyConfig(t *testing.T, kind, cfgFile, listen string) string {
	t.Helper()
	cmd := exec.Command(built.udsvisor, "proxy", kind, "-c", cfgFile, "--listen", listen)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("udsvisor proxy %s: %v\n%s", kind, err, stderr.String())
	}
	return stdout.String()
}

// freePort returns a loopback TCP address that nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// waitTCP waits until addr accepts connections, failing at once if the
// server exits instead.
func (d *daemon) waitTCP(t *testing.T, addr string) {
	t.Helper()
	// A poll: the front servers have no readiness notification here.
	testutil.Eventually(t, 20*time.Second, func() error {
		select {
		case err := <-d.done:
			d.done <- err // for the cleanup
			t.Fatalf("%s exited before listening on %s: %v", d.cmd.Path, addr, err)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// daemon is a front server (nginx, apache2) started as root in its own
// process group, so that its workers can be killed with it.
type daemon struct {
	cmd    *exec.Cmd
	output *bytes.Buffer
	done   chan error // buffered 1: Wait's result
}

// startDaemon starts argv and stops its process group with stopSig after
// the test, then with SIGKILL if it lingers.
func startDaemon(t *testing.T, stopSig unix.Signal, logFile string, argv ...string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command(argv[0], argv[1:]...), output: &bytes.Buffer{}, done: make(chan error, 1)}
	d.cmd.Stdout, d.cmd.Stderr = d.output, d.output
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	pgid := d.cmd.Process.Pid
	t.Cleanup(func() {
		unix.Kill(pgid, stopSig)
		select {
		case <-d.done:
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not stop within 20s of %v", argv[0], stopSig)
			<-d.done
		}
		// Workers outliving their master would keep the port.
		unix.Kill(-pgid, unix.SIGKILL)
		if t.Failed() {
			logs, _ := os.ReadFile(logFile)
			t.Logf("%s output:\n%s\n%s:\n%s", argv[0], d.output, logFile, logs)
		}
	})
	return d
}

// configTest runs a server's syntax check (nginx -t, apache2 -t) and
// fails the test unless it passes.
func configTest(t *testing.T, argv ...string) {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

// unixClient is an HTTP client that dials sock whatever the URL says.
func unixClient(sock string) *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}
