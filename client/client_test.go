package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/udsvisor/udsvisor/api"
)

// serve runs h on a fresh Unix socket and returns its path. It stands in
// for the real control server, which has its own tests.
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

// seen is one request as the server received it.
type seen struct {
	Method, Path, Query, ContentType, Body string
}

// recorder answers every request with answer and reports what it got.
func recorder(answer any) (http.Handler, <-chan seen) {
	// Buffered to 1: each test case sends one request and reads it back.
	got := make(chan seen, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Content-Type"), string(b)}
		if s, ok := answer.(string); ok {
			io.WriteString(w, s)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(answer)
	})
	return h, got
}

var web = api.Service{
	Name: "web", State: "running", Pid: 42, Pids: []int{42}, Instances: 1,
	Since: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), UptimeSeconds: 3,
	Sockets: []api.Socket{{Name: "http", FD: 3, Path: "/run/web/http.sock", Owner: "web", Group: "www-data", Mode: "0660"}},
}

func TestServiceRequests(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		call func(c *Client) (api.Service, error)
		want seen
	}{
		{"get", func(c *Client) (api.Service, error) { return c.Get(ctx, "web") },
			seen{Method: "GET", Path: "/v1/services/web"}},
		{"start", func(c *Client) (api.Service, error) { return c.Start(ctx, "web") },
			seen{Method: "POST", Path: "/v1/services/web/start"}},
		{"stop", func(c *Client) (api.Service, error) { return c.Stop(ctx, "web") },
			seen{Method: "POST", Path: "/v1/services/web/stop"}},
		{"restart", func(c *Client) (api.Service, error) { return c.Restart(ctx, "web") },
			seen{Method: "POST", Path: "/v1/services/web/restart"}},
		{"signal", func(c *Client) (api.Service, error) { return c.Signal(ctx, "web", "HUP") },
			seen{Method: "POST", Path: "/v1/services/web/signal", ContentType: "application/json", Body: `{"signal":"HUP"}`}},
		// A slash in a name must stay inside its path segment, never
		// reach another endpoint.
		{"escaped", func(c *Client) (api.Service, error) { return c.Get(ctx, "../reload") },
			seen{Method: "GET", Path: "/v1/services/..%2Freload"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, got := recorder(web)
			c := New(serve(t, h))
			svc, err := tt.call(c)
			if err != nil {
				t.Fatal(err)
			}
			if r := <-got; r != tt.want {
				t.Errorf("server saw %+v, want %+v", r, tt.want)
			}
			if !reflect.DeepEqual(svc, web) {
				t.Errorf("got %+v, want %+v", svc, web)
			}
		})
	}
}

func TestList(t *testing.T) {
	h, got := recorder([]api.Service{web})
	list, err := New(serve(t, h)).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.Method != "GET" || r.Path != "/v1/services" {
		t.Errorf("server saw %+v", r)
	}
	if !reflect.DeepEqual(list, []api.Service{web}) {
		t.Errorf("got %+v", list)
	}
}

func TestReload(t *testing.T) {
	want := api.ReloadResult{Added: []string{"b"}, Removed: []string{}, Changed: []string{"a"}, Unchanged: []string{"c"}}
	h, got := recorder(want)
	res, err := New(serve(t, h)).Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.Method != "POST" || r.Path != "/v1/reload" {
		t.Errorf("server saw %+v", r)
	}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("got %+v, want %+v", res, want)
	}
}

func TestMetrics(t *testing.T) {
	const text = "# TYPE udsvisor_restarts_total counter\nudsvisor_restarts_total{service=\"web\"} 3\n"
	h, got := recorder(text)
	m, err := New(serve(t, h)).Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.Method != "GET" || r.Path != "/metrics" {
		t.Errorf("server saw %+v", r)
	}
	if m != text {
		t.Errorf("got %q, want %q", m, text)
	}
}

func TestEmptyNameIsRefusedLocally(t *testing.T) {
	// No server: the request must not be sent at all.
	if _, err := New("/nonexistent/control.sock").Start(context.Background(), ""); err == nil || err.Error() != "empty service name" {
		t.Fatalf("got %v", err)
	}
}

func TestAPIErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   APIError
		text   string
	}{
		{"unknown", 404, `{"error":"unknown service \"nosuch\""}`,
			APIError{Status: 404, Message: `unknown service "nosuch"`},
			`unknown service "nosuch"`},
		{"conflict", 409, `{"error":"web is not running"}`,
			APIError{Status: 409, Message: "web is not running"},
			"web is not running"},
		{"details", 422, `{"error":"2 error(s) in the config; nothing was changed","details":["a.toml:3: x: bad","a.toml:9: y: bad"]}`,
			APIError{Status: 422, Message: "2 error(s) in the config; nothing was changed", Details: []string{"a.toml:3: x: bad", "a.toml:9: y: bad"}},
			"2 error(s) in the config; nothing was changed\n  a.toml:3: x: bad\n  a.toml:9: y: bad"},
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

func TestNoSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control.sock")
	_, err := New(sock).List(context.Background())
	want := "no control socket at " + sock + ": udsvisor is not running (or -s points elsewhere)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("errors.Is(%v, ENOENT) is false", err)
	}
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
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("errors.Is(%v, ECONNREFUSED) is false", err)
	}
}

func TestOtherTransportErrorsNameTheSocket(t *testing.T) {
	// The server hangs up without an answer.
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
