package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/udsvisor/udsvisor/api"
)

// fakeControl is a tiny stand-in for the control server (which has its
// own tests): fixed services, and a record of every request.
type fakeControl struct {
	services map[string]api.Service
	logs     []api.LogLine
	reload   api.ReloadResult

	mu    sync.Mutex
	calls []string // "METHOD path?query body"
}

func (f *fakeControl) record(r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	call := r.Method + " " + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		call += "?" + r.URL.RawQuery
	}
	if len(b) > 0 {
		call += " " + string(b)
	}
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
}

func (f *fakeControl) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeControl) handler() http.Handler {
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	lookup := func(w http.ResponseWriter, r *http.Request) (api.Service, bool) {
		f.record(r)
		s, ok := f.services[r.PathValue("name")]
		if !ok {
			reply(w, http.StatusNotFound, api.Error{Error: "unknown service " + r.PathValue("name")})
		}
		return s, ok
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		var list []api.Service
		for _, s := range f.services {
			list = append(list, s)
		}
		slices.SortFunc(list, func(a, b api.Service) int { return strings.Compare(a.Name, b.Name) })
		// As the real server: the table when asked for text.
		if strings.HasPrefix(r.Header.Get("Accept"), "text/plain") {
			w.Header().Set("Content-Type", api.TableType)
			api.WriteTable(w, list)
			return
		}
		reply(w, http.StatusOK, list)
	})
	mux.HandleFunc("GET /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		if s, ok := lookup(w, r); ok {
			reply(w, http.StatusOK, s)
		}
	})
	mux.HandleFunc("POST /v1/services/{name}/{action}", func(w http.ResponseWriter, r *http.Request) {
		if s, ok := lookup(w, r); ok {
			reply(w, http.StatusOK, s)
		}
	})
	mux.HandleFunc("GET /v1/services/{name}/logs", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := lookup(w, r); ok {
			w.Header().Set("Content-Type", "application/x-ndjson")
			enc := json.NewEncoder(w)
			for _, l := range f.logs {
				enc.Encode(l)
			}
		}
	})
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		reply(w, http.StatusOK, f.reload)
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		io.WriteString(w, "udsvisor_up 1\n")
	})
	return mux
}

// start serves f on a fresh Unix socket and returns its path.
func (f *fakeControl) start(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f.handler()}
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

var since = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

func newFakeControl() *fakeControl {
	return &fakeControl{services: map[string]api.Service{
		"web": {Name: "web", State: "running", Since: since, Pid: 4242, Pids: []int{4242}, Instances: 1,
			UptimeSeconds: 3*3600 + 12*60 + 7.5, Restarts: 2, Sockets: []api.Socket{
				{Name: "http", FD: 3, Path: "/run/app/api.sock", Owner: "app", Group: "www-data", Mode: "0660"},
				{Name: "tcp", FD: 4, Address: "127.0.0.1:8080"},
			}},
		"worker": {Name: "worker", State: "starting", Since: since, Pid: 77, Pids: []int{77}, Instances: 1,
			UptimeSeconds: 0.2, Sockets: []api.Socket{}},
		"cron": {Name: "cron", State: "failed", Since: since, Restarts: 12, Failures: 12,
			LastError: "exited with status 1", Sockets: []api.Socket{}},
	}}
}

// ctlRun runs `udsvisor ctl -s sock args...` with a default config that
// does not exist, so that the machine's own never matters.
func ctlRun(t *testing.T, sock string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &ctl{defaultConfig: filepath.Join(t.TempDir(), "none.toml"), stdout: &out, stderr: &errOut}
	err := c.run(context.Background(), append([]string{"-s", sock}, args...))
	return out.String(), err
}

func TestCtlStatusTable(t *testing.T) {
	sock := newFakeControl().start(t)
	out, err := ctlRun(t, sock, "status")
	if err != nil {
		t.Fatal(err)
	}
	want := `
NAME    STATE     PID   UPTIME  RESTARTS  SOCKETS
cron    failed    -     -       12        -
web     running   4242  3h12m   2         http=/run/app/api.sock tcp=127.0.0.1:8080
worker  starting  77    0s      0         -
`[1:]
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
}

func TestCtlStatusJSON(t *testing.T) {
	f := newFakeControl()
	sock := f.start(t)
	// --json after a name: flags may follow the arguments.
	out, err := ctlRun(t, sock, "status", "web", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got []api.Service
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if want := []api.Service{f.services["web"]}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if calls := f.Calls(); !slices.Equal(calls, []string{"GET /v1/services/web"}) {
		t.Errorf("server saw %q", calls)
	}
}

func TestCtlStatusNamedNotRunning(t *testing.T) {
	sock := newFakeControl().start(t)
	for _, tt := range []struct {
		args []string
		want string // "" for no error
		code int    // the exit code: 3 not running, 4 unknown (LSB, systemctl)
	}{
		{[]string{"status", "web", "worker"}, "", 0},
		{[]string{"status", "all"}, "", 0},
		{[]string{"status", "web", "cron"}, "cron is failed", 3},
		{[]string{"status", "nosuch", "cron"}, `unknown service "nosuch"; cron is failed`, 4},
		{[]string{"status", "--json", "nosuch"}, `unknown service "nosuch"`, 4},
		{[]string{"status", "nosuch"}, `unknown service "nosuch"`, 4},
	} {
		out, err := ctlRun(t, sock, tt.args...)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tt.args, err)
			}
			continue
		}
		var nr notRunningError
		if !errors.As(err, &nr) || err.Error() != tt.want {
			t.Errorf("%q: got %T %v, want notRunningError %q", tt.args, err, err, tt.want)
			continue
		}
		var coded interface{ ExitCode() int }
		if !errors.As(err, &coded) || coded.ExitCode() != tt.code {
			t.Errorf("%q: no exit code %d", tt.args, tt.code)
		}
		// Nothing to show, no table header.
		if slices.Equal(tt.args, []string{"status", "nosuch"}) && out != "" {
			t.Errorf("%q printed %q, want nothing", tt.args, out)
		}
		// The services that exist are still shown.
		if slices.Contains(tt.args, "cron") && !regexp.MustCompile(`(?m)^cron +failed `).MatchString(out) {
			t.Errorf("%q: output lacks cron:\n%s", tt.args, out)
		}
	}
	// Without names, a stopped service is not an error.
	if _, err := ctlRun(t, sock, "status"); err != nil {
		t.Errorf("status: %v", err)
	}
}

func TestCtlActions(t *testing.T) {
	f := newFakeControl()
	sock := f.start(t)
	out, err := ctlRun(t, sock, "restart", "web", "worker")
	if err != nil || out != "" {
		t.Fatalf("restart: %q, %v", out, err)
	}
	// An unknown name does not stop the others, and is named.
	_, err = ctlRun(t, sock, "stop", "nosuch", "web")
	if err == nil || err.Error() != "stop nosuch: unknown service nosuch" {
		t.Errorf("stop: %v", err)
	}
	if _, err := ctlRun(t, sock, "signal", "web", "HUP"); err != nil {
		t.Errorf("signal: %v", err)
	}
	want := []string{
		"POST /v1/services/web/restart",
		"POST /v1/services/worker/restart",
		"POST /v1/services/nosuch/stop",
		"POST /v1/services/web/stop",
		`POST /v1/services/web/signal {"signal":"HUP"}`,
	}
	if calls := f.Calls(); !slices.Equal(calls, want) {
		t.Errorf("server saw\n%q\nwant\n%q", calls, want)
	}
}

func TestCtlLogsFormat(t *testing.T) {
	f := newFakeControl()
	at := time.Date(2026, 11, 25, 12, 0, 0, 5e6, time.FixedZone("CET", 3600))
	f.logs = []api.LogLine{
		{Time: at, Pid: 4242, Stream: "stdout", Line: "listening on fd 3"},
		// A service's output must not reach the terminal as escapes.
		{Time: at, Pid: 4242, Stream: "stderr", Line: "bad \x1b]0;pwned\x07 title\tok"},
	}
	sock := f.start(t)
	out, err := ctlRun(t, sock, "logs", "web", "-n", "5")
	if err != nil {
		t.Fatal(err)
	}
	want := `
2026-11-25T11:00:00.005Z web[4242] stdout: listening on fd 3
2026-11-25T11:00:00.005Z web[4242] stderr: bad \x1b]0;pwned\a title	ok
`[1:]
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
	if calls := f.Calls(); !slices.Equal(calls, []string{"GET /v1/services/web/logs?lines=5"}) {
		t.Errorf("server saw %q", calls)
	}
}

// --json prints each kept line as a JSON object, the line as written
// (JSON escapes its control characters).
func TestCtlLogsJSON(t *testing.T) {
	f := newFakeControl()
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	f.logs = []api.LogLine{{Time: at, Pid: 7, Stream: "stderr", Line: "x\x1by"}}
	sock := f.start(t)
	out, err := ctlRun(t, sock, "logs", "web", "--json")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"time":"2026-11-25T12:00:00Z","pid":7,"stream":"stderr","line":"x\u001by"}` + "\n"
	if out != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

func TestCtlReload(t *testing.T) {
	f := newFakeControl()
	f.reload = api.ReloadResult{Added: []string{"new"}, Changed: []string{"web", "worker"}, Unchanged: []string{"cron"}}
	sock := f.start(t)
	out, err := ctlRun(t, sock, "reload")
	if err != nil {
		t.Fatal(err)
	}
	want := `
added:     new
removed:   none
changed:   web worker
unchanged: cron
`[1:]
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
}

func TestCtlReloadJSON(t *testing.T) {
	f := newFakeControl()
	f.reload = api.ReloadResult{Added: []string{"new"}, Removed: []string{}, Changed: []string{"web"}, Unchanged: []string{}}
	sock := f.start(t)
	out, err := ctlRun(t, sock, "reload", "--json")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"added":["new"],"removed":[],"changed":["web"],"unchanged":[]}` + "\n"
	if out != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

func TestCtlSocketFlagAfterCommand(t *testing.T) {
	f := newFakeControl()
	sock := f.start(t)
	var out bytes.Buffer
	c := &ctl{defaultConfig: filepath.Join(t.TempDir(), "none.toml"), stdout: &out, stderr: io.Discard}
	if err := c.run(context.Background(), []string{"metrics", "-s", sock}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "udsvisor_up 1\n" {
		t.Errorf("got %q", out.String())
	}
}

func TestCtlUsageErrors(t *testing.T) {
	// Nothing listens: a usage error must come before any connection.
	sock := filepath.Join(t.TempDir(), "control.sock")
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"status", "--bogus"},
		{"start"},
		{"stop", "-f", "web"},
		{"signal", "web"},
		{"signal", "web", "HUP", "extra"},
		{"logs"},
		{"logs", "web", "other"},
		{"logs", "web", "-n", "-1"},
		{"logs", "web", "-n", "ten"},
		{"reload", "now"},
	} {
		_, err := ctlRun(t, sock, args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%q: got %T %v, want usageError", args, err, err)
		}
	}
}

func TestParseArgs(t *testing.T) {
	for _, tt := range []struct {
		args []string
		pos  []string
		json bool
	}{
		{[]string{"a", "b"}, []string{"a", "b"}, false},
		{[]string{"--json", "a"}, []string{"a"}, true},
		{[]string{"a", "-json", "b"}, []string{"a", "b"}, true},
		{[]string{"a", "--", "--json"}, []string{"a", "--json"}, false},
	} {
		c := &ctl{stdout: io.Discard}
		fs := c.flags("status", "")
		asJSON := fs.Bool("json", false, "")
		pos, err := parseArgs(fs, tt.args)
		if err != nil || !slices.Equal(pos, tt.pos) || *asJSON != tt.json {
			t.Errorf("%q: got %q json=%v err=%v, want %q json=%v", tt.args, pos, *asJSON, err, tt.pos, tt.json)
		}
	}
}
