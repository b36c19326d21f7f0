// SPDX-License-Identifier: Apache-2.0

//go:build linux

package client

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

func TestRootSocket(t *testing.T) {
	if got, want := RootSocket("/run/udsvisor/control.sock"), "/run/udsvisor/control.sock.root"; got != want {
		t.Errorf("RootSocket = %q, want %q", got, want)
	}
	long := "/run/" + strings.Repeat("x", 98) // 103 bytes, the most a path takes is 107
	if got := RootSocket(long); got != "" {
		t.Errorf("RootSocket of a %d-byte path = %q, want none", len(long), got)
	}
}

// answering serves a handler that answers name, so that a test sees
// which socket a request reached: the real server answers alike on both.
func answering(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
}

// TestT28RootTakesTheRootSocket: root's requests go to the root-only
// socket next to the control socket; anyone else's, and root's when
// there is no root-only socket or nobody listens on it, go to the
// control socket.
func TestT28RootTakesTheRootSocket(t *testing.T) {
	sock := serve(t, answering("control"))
	ctx := context.Background()
	c := New(sock)
	c.who = identity{uid: 0}
	if got, err := c.Metrics(ctx); err != nil || got != "control" {
		t.Errorf("root without a root-only socket reached %q, %v; want the control socket", got, err)
	}

	root := RootSocket(sock)
	ln, err := net.Listen("unix", root)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: answering("root")}
	go srv.Serve(ln)
	c = New(sock)
	c.who = identity{uid: 0}
	if got, err := c.Metrics(ctx); err != nil || got != "root" {
		t.Errorf("root reached %q, %v; want the root-only socket", got, err)
	}
	c = New(sock)
	c.who = identity{uid: 1000}
	if got, err := c.Metrics(ctx); err != nil || got != "control" {
		t.Errorf("uid 1000 reached %q, %v; want the control socket", got, err)
	}

	// Left behind by a udsvisor that was SIGKILLed, then an older one
	// started: a stale root-only socket.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	srv.Close()
	if _, err := os.Stat(root); err != nil {
		t.Fatal(err)
	}
	c = New(sock)
	c.who = identity{uid: 0}
	if got, err := c.Metrics(ctx); err != nil || got != "control" {
		t.Errorf("root with a stale root-only socket reached %q, %v; want the control socket", got, err)
	}
}

// fullBacklog listens on a fresh socket that accepts nothing, fills its
// backlog, and returns the socket's
// path and the listening fd.
func fullBacklog(t *testing.T) (string, int) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "control.sock")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: sock}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		t.Fatal(err)
	}
	testutil.FillBacklog(t, sock)
	return sock, fd
}

// TestT28FullBacklogRetried: a connect that finds the backlog full is
// retried, and the request is answered once the server takes
// connections again.
func TestT28FullBacklogRetried(t *testing.T) {
	sock, fd := fullBacklog(t)
	answered := make(chan error, 1) // the request goroutine may finish after a failed test returned
	go func() {
		_, err := New(sock).Metrics(context.Background())
		answered <- err
	}()
	select {
	case err := <-answered:
		t.Fatalf("answered while the backlog was full and nobody accepted: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	// Any server that accepts will do: what counts is the backlog a
	// listener of its own made full.
	ln, err := net.FileListener(os.NewFile(uintptr(fd), sock))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: answering("control")}
	go srv.Serve(ln)
	defer srv.Close()
	if err := <-answered; err != nil {
		t.Errorf("once the server accepts: %v", err)
	}
}

// TestT28FullBacklogGivesUp: a backlog that stays full is reported as
// busy, with the errno, after the retries.
func TestT28FullBacklogGivesUp(t *testing.T) {
	sock, _ := fullBacklog(t)
	c := New(sock)
	c.busyWait = 300 * time.Millisecond
	start := time.Now()
	_, err := c.Metrics(context.Background())
	took := time.Since(start)
	want := "control socket " + sock + " is busy (its connection backlog stayed full for 300ms); try again"
	wantErr(t, err, want, syscall.EAGAIN)
	if took < 300*time.Millisecond {
		t.Errorf("gave up after %v: it did not retry", took)
	}
}
