// SPDX-License-Identifier: Apache-2.0

//go:build linux

package control

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/supervisor"
)

// rootServer serves b on a root-only socket; the test process is root.
func rootServer(t *testing.T, b Backend) *testServer {
	return startServer(t, b, Options{ControlGID: -1, StatusGID: -1}, 0, 0o600, nil)
}

// apiError decodes an api.Error body, failing if it is not one.
func apiError(t *testing.T, body string) api.Error {
	t.Helper()
	var e api.Error
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == "" {
		t.Fatalf("body %q is not an api.Error: %v", body, err)
	}
	return e
}

func TestReadEndpoints(t *testing.T) {
	ts := rootServer(t, newFake())
	code, body := ts.do(t, "GET", "/v1/services", "")
	var svcs []api.Service
	if err := json.Unmarshal([]byte(body), &svcs); code != 200 || err != nil {
		t.Fatalf("GET /v1/services: %d %s (%v)", code, body, err)
	}
	if len(svcs) != 2 || svcs[0].Name != "db" || svcs[1].Name != "web" || svcs[1].Pid != 1000 {
		t.Errorf("GET /v1/services = %+v", svcs)
	}
	code, body = ts.do(t, "GET", "/v1/services/web", "")
	var svc api.Service
	if err := json.Unmarshal([]byte(body), &svc); code != 200 || err != nil || svc.Name != "web" || svc.State != "running" {
		t.Errorf("GET /v1/services/web: %d %s (%v)", code, body, err)
	}
}

// TestT17NotFoundAndMethods: unknown services, invalid names, unknown paths
// and wrong methods are JSON errors, and nothing changes.
func TestT17NotFoundAndMethods(t *testing.T) {
	b := newFake()
	ts := rootServer(t, b)
	for _, c := range []struct {
		method, path string
		status       int
		msg          string
	}{
		{"GET", "/v1/services/nope", 404, "unknown service"},
		{"POST", "/v1/services/nope/restart", 404, "unknown service"},
		{"GET", "/v1/services/..%2Fweb", 404, "unknown service"},
		{"POST", "/v1/services/..%2Fweb/restart", 404, "unknown service"},
		{"GET", "/v1/services/" + strings.Repeat("a", 65), 404, "unknown service"},
		{"GET", "/v1/services/web%00", 404, "unknown service"},
		{"POST", "/v1/services/web/../web/restart", 404, "no such endpoint"},
		{"GET", "/v1/services/", 404, "no such endpoint"},
		{"GET", "/v2/services", 404, "no such endpoint"},
		{"GET", "/", 404, "no such endpoint"},
		{"GET", "/v1/services/web/restart", 405, "not allowed"},
		{"DELETE", "/v1/services", 405, "not allowed"},
		{"POST", "/metrics", 405, "not allowed"},
	} {
		code, body := ts.do(t, c.method, c.path, "")
		if code != c.status {
			t.Errorf("%s %s = %d %s, want %d", c.method, c.path, code, body, c.status)
			continue
		}
		if e := apiError(t, body); !strings.Contains(e.Error, c.msg) {
			t.Errorf("%s %s: error %q, want it to contain %q", c.method, c.path, e.Error, c.msg)
		}
	}
	if svc := b.Service("web"); svc.Restarts != 0 || svc.Pid != 1000 {
		t.Errorf("web changed: %+v", svc)
	}
}

func TestMethodNotAllowedHeader(t *testing.T) {
	ts := rootServer(t, newFake())
	c := ts.client()
	req, _ := http.NewRequest("GET", "http://udsvisor/v1/services/web/restart", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("405: status %d, Allow %q, Content-Type %q", resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("Content-Type"))
	}
}

func TestActions(t *testing.T) {
	b := newFake()
	ts := rootServer(t, b)
	for _, c := range []struct {
		path, body string
		state      string
		pid        bool
	}{
		{"/v1/services/db/start", "", "running", true},
		{"/v1/services/db/stop", "{}", "stopped", false},
		{"/v1/services/db/restart", " { } \n", "running", true},
	} {
		code, body := ts.do(t, "POST", c.path, c.body)
		var svc api.Service
		if err := json.Unmarshal([]byte(body), &svc); code != 200 || err != nil {
			t.Fatalf("POST %s: %d %s", c.path, code, body)
		}
		// The answer is the state after the action, the same the backend holds.
		got := b.Service("db")
		if svc.State != c.state || string(got.State) != c.state || (svc.Pid != 0) != c.pid || svc.Pid != got.Pid {
			t.Errorf("POST %s: answered %s pid %d, backend %s pid %d; want %s", c.path, svc.State, svc.Pid, got.State, got.Pid, c.state)
		}
	}
}

func TestT17Signal(t *testing.T) {
	b := newFake()
	ts := rootServer(t, b)
	for _, name := range []string{"HUP", "sigusr1", "SIGTERM", "Usr2"} {
		if code, body := ts.do(t, "POST", "/v1/services/web/signal", `{"signal":"`+name+`"}`); code != 200 {
			t.Errorf("signal %s: %d %s", name, code, body)
		}
	}
	want := []unix.Signal{unix.SIGHUP, unix.SIGUSR1, unix.SIGTERM, unix.SIGUSR2}
	if got := b.Signals("web"); !slices.Equal(got, want) {
		t.Errorf("web received %v, want %v", got, want)
	}
	// A stopped service has no process to signal: 409.
	code, body := ts.do(t, "POST", "/v1/services/db/signal", `{"signal":"HUP"}`)
	if code != http.StatusConflict || !strings.Contains(apiError(t, body).Error, supervisor.ErrNotRunning.Error()) {
		t.Errorf("signal stopped db: %d %s, want 409", code, body)
	}
}

// TestT17T18MalformedBodies: each is a 400 and changes nothing.
func TestT17T18MalformedBodies(t *testing.T) {
	b := newFake()
	ts := rootServer(t, b)
	huge := `{"signal":"HUP","x":"` + strings.Repeat("a", 70<<10) + `"}`
	for _, c := range []struct{ path, body, msg string }{
		{"/v1/services/web/signal", `{"signal":`, "decode request body"},
		{"/v1/services/web/signal", `{"signal":"HUP","force":true}`, "unknown field"},
		{"/v1/services/web/signal", `{"signal":"HUP"} {"signal":"TERM"}`, "after the JSON value"},
		{"/v1/services/web/signal", `{"signal":"HUP"} x`, "decode request body"},
		{"/v1/services/web/signal", `{"signal":"NOPE"}`, `unknown signal "NOPE"`},
		{"/v1/services/web/signal", `{"signal":""}`, "unknown signal"},
		{"/v1/services/web/signal", `{"signal":9}`, "decode request body"},
		{"/v1/services/web/signal", ``, "empty"},
		{"/v1/services/web/signal", huge, "larger than 65536 bytes"},
		{"/v1/services/web/restart", `{"force":true}`, "unknown field"},
		{"/v1/services/web/restart", `[]`, "decode request body"},
		{"/v1/services/web/stop", `{} {}`, "after the JSON value"},
		{"/v1/reload", `{"file":"/etc/shadow"}`, "unknown field"},
	} {
		code, body := ts.do(t, "POST", c.path, c.body)
		if code != http.StatusBadRequest {
			t.Errorf("POST %s %.40q: %d %s, want 400", c.path, c.body, code, body)
			continue
		}
		if e := apiError(t, body); !strings.Contains(e.Error, c.msg) {
			t.Errorf("POST %s %.40q: error %q, want %q", c.path, c.body, e.Error, c.msg)
		}
	}
	// Refused before the supervisor is asked anything.
	if calls := b.Calls(); len(calls) != 0 {
		t.Errorf("malformed requests reached the supervisor: %q", calls)
	}
}

func TestBackendErrorMapping(t *testing.T) {
	b := newFake()
	ts := rootServer(t, b)

	b.SetReload(supervisor.ReloadResult{Added: []string{"cache"}, Unchanged: []string{"db", "web"}}, nil)
	code, body := ts.do(t, "POST", "/v1/reload", "")
	var res api.ReloadResult
	if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil || !slices.Equal(res.Added, []string{"cache"}) {
		t.Errorf("reload: %d %s", code, body)
	}

	b.SetReload(supervisor.ReloadResult{}, config.Errors{
		{File: "services.toml", Line: 14, Key: "services.api.sockets[0].mode", Msg: `"0778" is not an octal mode like "0660"`},
		{File: "services.toml", Line: 21, Key: "services.web.user", Msg: `unknown user "nosuch"`},
	})
	code, body = ts.do(t, "POST", "/v1/reload", "")
	e := apiError(t, body)
	wantDetails := []string{
		`services.toml:14: services.api.sockets[0].mode: "0778" is not an octal mode like "0660"`,
		`services.toml:21: services.web.user: unknown user "nosuch"`,
	}
	if code != http.StatusUnprocessableEntity || !slices.Equal(e.Details, wantDetails) || !strings.Contains(e.Error, "2 error(s)") {
		t.Errorf("reload with a broken config: %d %+v, want 422 with %q", code, e, wantDetails)
	}

	for _, c := range []struct {
		err    error
		status int
	}{
		{supervisor.ErrShuttingDown, http.StatusServiceUnavailable},
		{supervisor.ErrNotRunning, http.StatusConflict},
		{errors.New("start web: fork/exec /bin/x: no such file or directory"), http.StatusInternalServerError},
	} {
		b.FailActions(c.err)
		code, body := ts.do(t, "POST", "/v1/services/web/restart", "")
		if e := apiError(t, body); code != c.status || e.Error != c.err.Error() {
			t.Errorf("backend error %q: %d %q, want %d", c.err, code, e.Error, c.status)
		}
	}
}

// With Accept: text/plain the list is the table ctl status prints,
// rendered by the server; without it, JSON as before.
func TestListAsTable(t *testing.T) {
	ts := rootServer(t, newFake())
	resp, b := ts.send(t, "GET", "/v1/services", "", http.Header{"Accept": {"text/plain"}})
	lines := strings.Split(b, "\n")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != api.TableType || len(lines) != 4 ||
		!strings.HasPrefix(lines[0], "NAME  STATE    PID   UPTIME") ||
		!strings.HasPrefix(lines[1], "db    stopped  -     -") ||
		!strings.HasPrefix(lines[2], "web   running  1000  ") {
		t.Errorf("table: %d %q\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
}
