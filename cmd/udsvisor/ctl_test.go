// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/internal/controltest"
	"github.com/udsvisor/udsvisor/internal/fakesup"
	"github.com/udsvisor/udsvisor/supervisor"
)

// webUptime is how long web's process has run when a test starts.
const webUptime = 3*time.Hour + 12*time.Minute + 7*time.Second + 500*time.Millisecond

// ctlServices are what the fake supervisor behind the real control
// server supervises in the ctl tests: web has run for webUptime, worker
// is starting, cron failed.
func ctlServices() []supervisor.Status {
	now := time.Now()
	return []supervisor.Status{
		{Name: "web", State: supervisor.Running, Since: since, Pid: 4242, StartedAt: now.Add(-webUptime), Restarts: 2,
			Sockets: []*config.Socket{
				{Index: 0, FD: 3, Name: "http", Path: "/run/app/api.sock", OwnerName: "app", GroupName: "www-data", Mode: 0o660},
				{Index: 1, FD: 4, Name: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:8080")},
			}},
		{Name: "worker", State: supervisor.Starting, Since: since, Pid: 77, StartedAt: now},
		{Name: "cron", State: supervisor.Failed, Since: since, Restarts: 12, Failures: 12, LastError: "exited with status 1"},
	}
}

var since = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

// startCtl serves the real control API of a fake supervisor of
// ctlServices, and returns the socket and the fake.
func startCtl(t *testing.T) (string, *fakesup.Supervisor) {
	t.Helper()
	return controltest.Start(t, ctlServices()...)
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
	sock, _ := startCtl(t)
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
	sock, f := startCtl(t)
	// --json after a name: flags may follow the arguments.
	out, err := ctlRun(t, sock, "status", "web", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got []api.Service
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 1 {
		t.Fatalf("%v in %s", err, out)
	}
	// The uptime is the server's clock's; the rest is fixed.
	started := f.Service("web").StartedAt
	if up := time.Duration(got[0].UptimeSeconds * float64(time.Second)); up < webUptime || up > webUptime+time.Minute {
		t.Errorf("uptime %v, want %v and a little", up, webUptime)
	}
	if got[0].StartedAt == nil || !got[0].StartedAt.Equal(started) {
		t.Errorf("started at %v, want %v", got[0].StartedAt, started)
	}
	if p := got[0].Processes; len(p) != 1 || p[0].StartedAt == nil || !p[0].StartedAt.Equal(started) {
		t.Errorf("processes %+v, want one started at %v", p, started)
	} else {
		p[0].StartedAt = nil
	}
	got[0].UptimeSeconds, got[0].StartedAt = 0, nil
	want := api.Service{Name: "web", State: "running", Since: since, Pid: 4242, Pids: []int{4242}, Instances: 1, WantedInstances: 1,
		Processes: []api.Process{{Instance: 0, State: "running", Pid: 4242, Restarts: 2}},
		Restarts:  2, Sockets: []api.Socket{
			{Name: "http", FD: 3, Path: "/run/app/api.sock", Owner: "app", Group: "www-data", Mode: "0660"},
			{Name: "tcp", FD: 4, Address: "127.0.0.1:8080"},
		}}
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("got  %+v\nwant %+v", got[0], want)
	}
	if calls := f.Calls(); !slices.Equal(calls, []string{"Status web"}) {
		t.Errorf("the supervisor saw %q", calls)
	}
}

func TestCtlStatusNamedNotRunning(t *testing.T) {
	sock, _ := startCtl(t)
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
	sock, f := startCtl(t)
	out, err := ctlRun(t, sock, "restart", "web", "worker")
	if err != nil || out != "" {
		t.Fatalf("restart: %q, %v", out, err)
	}
	if _, err := ctlRun(t, sock, "signal", "web", "HUP"); err != nil {
		t.Errorf("signal: %v", err)
	}
	// An unknown name does not stop the others, and is named.
	_, err = ctlRun(t, sock, "stop", "nosuch", "web")
	if err == nil || err.Error() != `stop nosuch: unknown service "nosuch"` {
		t.Errorf("stop: %v", err)
	}
	// A stopped service has no process to signal.
	_, err = ctlRun(t, sock, "signal", "web", "HUP")
	if err == nil || err.Error() != "signal web: service is not running" {
		t.Errorf("signal a stopped service: %v", err)
	}
	want := []string{
		"Restart web", "Status web",
		"Restart worker", "Status worker",
		"Signal web SIGHUP", "Status web",
		"Stop nosuch",
		"Stop web", "Status web",
		"Signal web SIGHUP",
	}
	if calls := f.Calls(); !slices.Equal(calls, want) {
		t.Errorf("the supervisor saw\n%q\nwant\n%q", calls, want)
	}
	if web, worker := f.Service("web"), f.Service("worker"); web.State != supervisor.Stopped || worker.State != supervisor.Running || worker.Restarts != 1 {
		t.Errorf("web %s, worker %s with %d restarts; want web stopped, worker running restarted once", web.State, worker.State, worker.Restarts)
	}
	if sigs := f.Signals("web"); !slices.Equal(sigs, []unix.Signal{unix.SIGHUP}) {
		t.Errorf("web received %v, want one SIGHUP", sigs)
	}
}

func TestCtlLogsFormat(t *testing.T) {
	sock, f := startCtl(t)
	at := time.Date(2026, 11, 25, 12, 0, 0, 5e6, time.FixedZone("CET", 3600))
	f.Log("web", supervisor.LogLine{Time: at, Pid: 4242, Stream: "stdout", Line: "listening on fd 3"})
	// A service's output must not reach the terminal as escapes.
	f.Log("web", supervisor.LogLine{Time: at, Pid: 4242, Stream: "stderr", Line: "bad \x1b]0;pwned\x07 title\tok"})
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
	if calls := f.Calls(); !slices.Equal(calls, []string{"Status web", "Logs web 5"}) {
		t.Errorf("the supervisor saw %q", calls)
	}

	// A service of several instances: each line names its instance.
	if err := f.Scale(context.Background(), "web", 2); err != nil {
		t.Fatal(err)
	}
	f.Log("web", supervisor.LogLine{Time: at, Pid: 4243, Stream: "stdout", Instance: 1, Line: "second"})
	out, err = ctlRun(t, sock, "logs", "web", "-n", "2")
	if err != nil {
		t.Fatal(err)
	}
	want = `
2026-11-25T11:00:00.005Z web#0[4242] stderr: bad \x1b]0;pwned\a title	ok
2026-11-25T11:00:00.005Z web#1[4243] stdout: second
`[1:]
	if out != want {
		t.Errorf("with two instances got:\n%s\nwant:\n%s", out, want)
	}
}

// --json prints each kept line as a JSON object, the line as written
// (JSON escapes its control characters).
func TestCtlLogsJSON(t *testing.T) {
	sock, f := startCtl(t)
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	f.Log("web", supervisor.LogLine{Time: at, Pid: 7, Stream: "stderr", Instance: 2, Line: "x\x1by"})
	out, err := ctlRun(t, sock, "logs", "web", "--json")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"time":"2026-11-25T12:00:00Z","pid":7,"stream":"stderr","instance":2,"line":"x\u001by"}` + "\n"
	if out != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

func TestCtlReload(t *testing.T) {
	sock, f := startCtl(t)
	f.SetReload(supervisor.ReloadResult{Added: []string{"new"}, Changed: []string{"web", "worker"}, Unchanged: []string{"cron"}}, nil)
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
	sock, f := startCtl(t)
	f.SetReload(supervisor.ReloadResult{Added: []string{"new"}, Removed: []string{}, Changed: []string{"web"}, Unchanged: []string{}}, nil)
	out, err := ctlRun(t, sock, "reload", "--json")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"added":["new"],"removed":[],"changed":["web"],"unchanged":[],"failed":[]}` + "\n"
	if out != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

func TestCtlSocketFlagAfterCommand(t *testing.T) {
	sock, f := startCtl(t)
	var out bytes.Buffer
	c := &ctl{defaultConfig: filepath.Join(t.TempDir(), "none.toml"), stdout: &out, stderr: io.Discard}
	if err := c.run(context.Background(), []string{"metrics", "-s", sock}); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^udsvisor_service_up\{service="web"\} 1$`).MatchString(out.String()) {
		t.Errorf("the metrics lack web's:\n%s", out.String())
	}
	if calls := f.Calls(); !slices.Equal(calls, []string{"List"}) {
		t.Errorf("the supervisor saw %q", calls)
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
		{"pause"},
		{"resume"},
		{"scale", "web"},
		{"scale", "web", "abc"},
		{"scale", "web", "3", "4"},
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

// isUp's state names are supervisor's.
func TestIsUpStates(t *testing.T) {
	for _, st := range []supervisor.State{supervisor.Starting, supervisor.Running, supervisor.Reloading, supervisor.Waiting} {
		if !isUp(string(st)) {
			t.Errorf("isUp(%q) is false", st)
		}
	}
	for _, st := range []supervisor.State{supervisor.Stopped, supervisor.Backoff} {
		if isUp(string(st)) {
			t.Errorf("isUp(%q) is true", st)
		}
	}
}
