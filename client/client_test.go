// SPDX-License-Identifier: Apache-2.0

package client

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// serve runs h on a fresh Unix socket and returns its path, for the tests
// that need a server behaving as the real control server never does. The
// others run against the real one, from package client_test
// (TestContract): package client's own tests cannot import control,
// which imports client.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return sock
}

func TestEmptyNameIsRefusedLocally(t *testing.T) {
	// No server: the request must not be sent at all.
	if _, err := New("/nonexistent/control.sock").Start(context.Background(), ""); err == nil || err.Error() != "empty service name" {
		t.Fatalf("got %v", err)
	}
}

// TestForeignErrorBodies: an error answer that is not an api.Error (a
// proxy, a server too old or too new) is kept as text. The real server
// only answers api.Error bodies, so a handler plays the foreign one; the
// real server's errors are in TestContract.
func TestForeignErrorBodies(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   APIError
		text   string
	}{
		{"not json", 500, "internal server error\n",
			APIError{Status: 500, Message: "internal server error"},
			"internal server error"},
		{"empty", 503, "",
			APIError{Status: 503},
			"HTTP 503 Service Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			_, err := New(sock).Get(context.Background(), "web")
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("got %T %v, want *APIError", err, err)
			}
			if !reflect.DeepEqual(*ae, tt.want) {
				t.Errorf("got %+v, want %+v", *ae, tt.want)
			}
			if err.Error() != tt.text {
				t.Errorf("message %q, want %q", err.Error(), tt.text)
			}
		})
	}
}

// TestForbiddenIsExplained: a 403 names the socket and the caller. The
// real server refuses only a caller it does not authorise, and the test
// runs as root, whom it always does (control's auth tests cover the
// refusal), so a handler plays the 403 for a uid 1000 caller (c.who,
// which only package client's own tests can set).
func TestForbiddenIsExplained(t *testing.T) {
	sock := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"error":"uid 1000 may read but not control services"}`)
	}))
	c := New(sock)
	c.who = identity{uid: 1000}
	_, err := c.Restart(context.Background(), "web")
	want := "permission denied on " + sock + " (you are uid 1000): uid 1000 may read but not control services"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 403 {
		t.Errorf("errors.As *APIError: %+v", ae)
	}
}

// wantErr fails the test unless err reads want and wraps errno.
func wantErr(t *testing.T, err error, want string, errno syscall.Errno) {
	t.Helper()
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if !errors.Is(err, errno) {
		t.Errorf("errors.Is(%v, %s) is false", err, unix.ErrnoName(errno))
	}
}

func TestNoSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control.sock")
	_, err := New(sock).List(context.Background())
	want := "no control socket at " + sock + ": udsvisor is not running (or -s points elsewhere)"
	wantErr(t, err, want, syscall.ENOENT)
}

func TestStaleSocket(t *testing.T) {
	// A socket file nobody listens on, as udsvisor leaves behind when it
	// is SIGKILLed.
	sock := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()

	_, err = New(sock).List(context.Background())
	want := "udsvisor is not running (stale socket " + sock + ")"
	wantErr(t, err, want, syscall.ECONNREFUSED)
}

func TestOtherTransportErrorsNameTheSocket(t *testing.T) {
	// The server hangs up without an answer, which the real one never
	// does.
	sock := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	_, err := New(sock).List(context.Background())
	if err == nil {
		t.Fatal("no error")
	}
	if want := "GET /v1/services on " + sock + ": EOF"; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
}
