// SPDX-License-Identifier: Apache-2.0

//go:build linux

package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/client"
	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/control"
	"github.com/udsvisor/udsvisor/internal/controltest"
	"github.com/udsvisor/udsvisor/internal/fakesup"
	"github.com/udsvisor/udsvisor/supervisor"
)

// webUptime is how long web's process has run when a contract case
// starts: what the status table shows as 3h12m.
const webUptime = 3*time.Hour + 12*time.Minute + 7*time.Second

// services are what the fake supervises in each contract case: web runs
// (restarted twice after an exit, with a Unix and a TCP socket), db was
// killed.
func services() []supervisor.Status {
	started := time.Now().Add(-webUptime)
	return []supervisor.Status{
		{Name: "web", State: supervisor.Running, Since: started, Pid: 1000, StartedAt: started, Restarts: 2,
			LastExit: &supervisor.Exit{Pid: 999, Status: 1 << 8, Time: exitedAt}, // exit status 1
			Sockets: []*config.Socket{
				{Index: 0, FD: 3, Name: "http", Path: "/run/app/api.sock", OwnerName: "app", GroupName: "www-data", Mode: 0o660},
				{Index: 1, FD: 4, Name: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:8080")},
			}},
		{Name: "db", State: supervisor.Failed, Since: exitedAt, Failures: 3, LastError: "setuid: operation not permitted",
			LastExit: &supervisor.Exit{Pid: 998, Status: unix.WaitStatus(unix.SIGKILL), Time: exitedAt}},
	}
}

// web and db are the services as the API shows them, without Since,
// StartedAt and UptimeSeconds, which normalise checks against the
// fake's state.
var (
	one, exitedAt = 1, time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	web           = api.Service{Name: "web", State: "running", Pid: 1000, Pids: []int{1000}, Instances: 1, WantedInstances: 1, Restarts: 2,
		LastExit: &api.Exit{Pid: 999, Code: &one, Time: exitedAt, Description: "exited with status 1"},
		Sockets: []api.Socket{
			{Name: "http", FD: 3, Path: "/run/app/api.sock", Owner: "app", Group: "www-data", Mode: "0660"},
			{Name: "tcp", FD: 4, Address: "127.0.0.1:8080"},
		}}
	db = api.Service{Name: "db", State: "failed", Pids: []int{}, WantedInstances: 1, Failures: 3, LastError: "setuid: operation not permitted",
		LastExit: &api.Exit{Pid: 998, Signal: "SIGKILL", Time: exitedAt, Description: "killed by SIGKILL"},
		Sockets:  []api.Socket{}}
)

// with returns s changed by change.
func with(s api.Service, change func(*api.Service)) api.Service {
	change(&s)
	return s
}

// lines are what web wrote before each case.
var lines = []api.LogLine{
	{Time: exitedAt, Pid: 999, Stream: "stderr", Line: "fatal: \x1b[31mno config\x1b[0m"},
	{Time: exitedAt.Add(time.Hour), Pid: 1000, Stream: "stdout", Line: "listening on fd 3"},
	{Time: exitedAt.Add(time.Hour), Pid: 1000, Stream: "stdout", Line: "ready"},
}

// unknown is the answer about a service named nosuch.
var unknown = &client.APIError{Status: 404, Message: `unknown service "nosuch"`}

// errEnough ends a follow stream from its callback.
var errEnough = errors.New("enough")

// collect returns a Logs callback that appends to *got, and ends the
// stream with errEnough after n lines.
func collect(got *[]api.LogLine, n int) func(api.LogLine) error {
	return func(l api.LogLine) error {
		*got = append(*got, l)
		if len(*got) == n {
			return errEnough
		}
		return nil
	}
}

// on returns a contract call of do (Get, Start, Stop, Restart) on name.
func on(do func(*client.Client, context.Context, string) (api.Service, error), name string) func(*client.Client, *fakesup.Supervisor) (any, error) {
	return func(c *client.Client, _ *fakesup.Supervisor) (any, error) { return do(c, context.Background(), name) }
}

// lastLines returns a contract call that reads the last n lines of name,
// without following.
func lastLines(name string, n int) func(*client.Client, *fakesup.Supervisor) (any, error) {
	return func(c *client.Client, _ *fakesup.Supervisor) (any, error) {
		var got []api.LogLine
		err := c.Logs(context.Background(), name, n, false, collect(&got, -1))
		return got, err
	}
}

// TestContract drives every route of the control API (control/routes.go)
// through this package against the real control server, on a real Unix
// socket, with the fake supervisor behind it. Each case checks what the
// client returned, or the *client.APIError the server's answer became,
// and the calls the supervisor received: a broken route, conversion or
// error mapping fails it.
func TestContract(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		// setup, if not nil, prepares the fake before the call.
		setup func(f *fakesup.Supervisor)
		call  func(c *client.Client, f *fakesup.Supervisor) (any, error)
		// want is the client's answer; nil: its zero value (with an
		// error).
		want  any
		err   *client.APIError
		calls []string
	}{
		{name: "GET /v1/services",
			call:  func(c *client.Client, _ *fakesup.Supervisor) (any, error) { return c.List(ctx) },
			want:  []api.Service{db, web},
			calls: []string{"List"}},
		{name: "GET /v1/services as a table",
			call: func(c *client.Client, _ *fakesup.Supervisor) (any, error) {
				var b strings.Builder
				err := c.ListTable(ctx, &b)
				return b.String(), err
			},
			want: `
NAME  STATE    PID   UPTIME  RESTARTS  SOCKETS
db    failed   -     -       0         -
web   running  1000  3h12m   2         http=/run/app/api.sock tcp=127.0.0.1:8080
`[1:],
			calls: []string{"List"}},
		{name: "GET /v1/services/{name}",
			call:  on((*client.Client).Get, "web"),
			want:  web,
			calls: []string{"Status web"}},
		{name: "GET /v1/services/{name} unknown",
			call:  on((*client.Client).Get, "nosuch"),
			err:   unknown,
			calls: []string{"Status nosuch"}},
		// A slash in a name stays in its path segment: it never reaches
		// another endpoint, nor the supervisor.
		{name: "GET /v1/services/{name} escaped",
			call:  on((*client.Client).Get, "../reload"),
			err:   &client.APIError{Status: 404, Message: `unknown service "../reload" (names are [A-Za-z0-9_.@-]{1,64})`},
			calls: nil},
		{name: "POST /v1/services/{name}/start",
			call: on((*client.Client).Start, "db"),
			want: with(db, func(s *api.Service) {
				s.State, s.Pid, s.Pids, s.Instances = "running", 2001, []int{2001}, 1
				s.Failures, s.LastError = 0, ""
			}),
			calls: []string{"Start db", "Status db"}},
		{name: "POST /v1/services/{name}/start unknown",
			call:  on((*client.Client).Start, "nosuch"),
			err:   unknown,
			calls: []string{"Start nosuch"}},
		{name: "POST /v1/services/{name}/stop",
			call: on((*client.Client).Stop, "web"),
			want: with(web, func(s *api.Service) {
				s.State, s.Pid, s.Pids, s.Instances = "stopped", 0, []int{}, 0
			}),
			calls: []string{"Stop web", "Status web"}},
		{name: "POST /v1/services/{name}/stop shutting down",
			setup: func(f *fakesup.Supervisor) { f.FailActions(supervisor.ErrShuttingDown) },
			call:  on((*client.Client).Stop, "web"),
			err:   &client.APIError{Status: 503, Message: "udsvisor is shutting down"},
			calls: []string{"Stop web"}},
		{name: "POST /v1/services/{name}/restart",
			call: on((*client.Client).Restart, "web"),
			want: with(web, func(s *api.Service) {
				s.Pid, s.Pids, s.Restarts = 2001, []int{2001}, 3
			}),
			calls: []string{"Restart web", "Status web"}},
		{name: "POST /v1/services/{name}/restart replaced",
			setup: func(f *fakesup.Supervisor) { f.FailActions(supervisor.ErrReplaced) },
			call:  on((*client.Client).Restart, "web"),
			err:   &client.APIError{Status: 503, Message: supervisor.ErrReplaced.Error()},
			calls: []string{"Restart web"}},
		{name: "POST /v1/services/{name}/restart failing",
			setup: func(f *fakesup.Supervisor) {
				f.FailActions(errors.New("start web: fork/exec /bin/x: no such file or directory"))
			},
			call:  on((*client.Client).Restart, "web"),
			err:   &client.APIError{Status: 500, Message: "start web: fork/exec /bin/x: no such file or directory"},
			calls: []string{"Restart web"}},
		{name: "POST /v1/services/{name}/pause",
			call: on((*client.Client).Pause, "web"),
			want: with(web, func(s *api.Service) {
				s.State, s.Pid, s.Pids, s.Instances = "paused", 0, []int{}, 0
			}),
			calls: []string{"Pause web", "Status web"}},
		{name: "POST /v1/services/{name}/resume",
			setup: func(f *fakesup.Supervisor) { f.Pause(ctx, "web") },
			call:  on((*client.Client).Resume, "web"),
			want: with(web, func(s *api.Service) {
				s.Pid, s.Pids = 2001, []int{2001}
			}),
			calls: []string{"Pause web", "Resume web", "Status web"}},
		{name: "POST /v1/services/{name}/resume not paused",
			call:  on((*client.Client).Resume, "db"),
			err:   &client.APIError{Status: 409, Message: "service is not paused"},
			calls: []string{"Resume db"}},
		{name: "POST /v1/services/{name}/scale",
			call: func(c *client.Client, _ *fakesup.Supervisor) (any, error) { return c.Scale(ctx, "web", 2) },
			want: with(web, func(s *api.Service) {
				s.Pids, s.Instances, s.WantedInstances = []int{1000, 1001}, 2, 2
				s.Processes = []api.Process{
					{Instance: 0, State: "running", Pid: 1000, Restarts: 2, LastExit: web.LastExit},
					{Instance: 1, State: "running", Pid: 1001},
				}
			}),
			calls: []string{"Scale web 2", "Status web"}},
		{name: "POST /v1/services/{name}/scale out of range",
			call:  func(c *client.Client, _ *fakesup.Supervisor) (any, error) { return c.Scale(ctx, "web", 0) },
			err:   &client.APIError{Status: 400, Message: "bad number of instances: 0 is not 1 to 256"},
			calls: []string{"Scale web 0"}},
		{name: "POST /v1/services/{name}/signal",
			call:  func(c *client.Client, _ *fakesup.Supervisor) (any, error) { return c.Signal(ctx, "web", "usr1") },
			want:  web,
			calls: []string{"Signal web SIGUSR1", "Status web"}},
		{name: "POST /v1/services/{name}/signal not running",
			call:  func(c *client.Client, _ *fakesup.Supervisor) (any, error) { return c.Signal(ctx, "db", "HUP") },
			err:   &client.APIError{Status: 409, Message: "service is not running"},
			calls: []string{"Signal db SIGHUP"}},
		{name: "POST /v1/services/{name}/signal unknown signal",
			call:  func(c *client.Client, _ *fakesup.Supervisor) (any, error) { return c.Signal(ctx, "web", "NOPE") },
			err:   &client.APIError{Status: 400, Message: `unknown signal "NOPE"`},
			calls: nil},
		{name: "GET /v1/services/{name}/logs",
			call:  lastLines("web", 2),
			want:  lines[1:],
			calls: []string{"Logs web 2"}},
		{name: "GET /v1/services/{name}/logs all",
			call:  lastLines("web", 0),
			want:  lines,
			calls: []string{"Logs web 0"}},
		{name: "GET /v1/services/{name}/logs unknown",
			call:  lastLines("nosuch", 10),
			err:   unknown,
			calls: []string{"Logs nosuch 10"}},
		{name: "GET /v1/services/{name}/logs follow",
			call: func(c *client.Client, f *fakesup.Supervisor) (any, error) {
				fresh := api.LogLine{Time: exitedAt.Add(2 * time.Hour), Pid: 1000, Stream: "stderr", Line: "fresh"}
				ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				var got []api.LogLine
				done := make(chan error, 1) // Logs's result, read once
				go func() { done <- c.Logs(ctx, "web", 1, true, collect(&got, 2)) }()
				if err := f.WaitFollowers(ctx, "web", 1); err != nil {
					return nil, err
				}
				f.Log("web", supervisor.LogLine(fresh))
				if err := <-done; !errors.Is(err, errEnough) {
					return got, err
				}
				// The server lets go of the stream once the client has.
				return got, f.WaitFollowers(ctx, "web", 0)
			},
			want:  []api.LogLine{lines[2], {Time: exitedAt.Add(2 * time.Hour), Pid: 1000, Stream: "stderr", Line: "fresh"}},
			calls: []string{"Follow web", "Logs web 1"}},
		{name: "GET /v1/upgrade",
			setup: func(f *fakesup.Supervisor) {
				f.SetUpgrade(api.Upgrade{Version: "1.2", Pid: 77, Upgrades: 1, LastError: "no", LastErrorAt: exitedAt.UTC()}, nil)
			},
			call:  func(c *client.Client, _ *fakesup.Supervisor) (any, error) { return c.UpgradeStatus(ctx) },
			want:  api.Upgrade{Version: "1.2", Pid: 77, Upgrades: 1, LastError: "no", LastErrorAt: exitedAt.UTC()},
			calls: []string{"UpgradeStatus"}},
		{name: "POST /v1/upgrade",
			setup: func(f *fakesup.Supervisor) { f.SetUpgrade(api.Upgrade{Version: "1.2", Pid: 77}, nil) },
			call: func(c *client.Client, f *fakesup.Supervisor) (any, error) {
				before, err := c.Upgrade(ctx)
				after, _ := c.UpgradeStatus(ctx)
				return []api.Upgrade{before, after}, err
			},
			want:  []api.Upgrade{{Version: "1.2", Pid: 77}, {Version: "1.2", Pid: 77, Upgrades: 1}},
			calls: []string{"Upgrade", "UpgradeStatus"}},
		{name: "POST /v1/upgrade refused",
			setup: func(f *fakesup.Supervisor) {
				f.SetUpgrade(api.Upgrade{}, fmt.Errorf("%w: /usr/sbin/udsvisor exited with status 1", control.ErrUpgradeRefused))
			},
			call:  func(c *client.Client, _ *fakesup.Supervisor) (any, error) { return c.Upgrade(ctx) },
			err:   &client.APIError{Status: 409, Message: "upgrade refused: /usr/sbin/udsvisor exited with status 1"},
			calls: []string{"Upgrade"}},
		{name: "POST /v1/upgrade under way",
			setup: func(f *fakesup.Supervisor) {
				f.SetUpgrade(api.Upgrade{}, fmt.Errorf("an upgrade is already under way: %w", supervisor.ErrUpgrading))
			},
			call:  func(c *client.Client, _ *fakesup.Supervisor) (any, error) { return c.Upgrade(ctx) },
			err:   &client.APIError{Status: 503, Message: "an upgrade is already under way: " + supervisor.ErrUpgrading.Error()},
			calls: []string{"Upgrade"}},
		{name: "POST /v1/reload",
			setup: func(f *fakesup.Supervisor) {
				f.SetReload(supervisor.ReloadResult{Added: []string{"cache"}, Removed: []string{}, Changed: []string{"web"}, Unchanged: []string{"db"}}, nil)
			},
			call:  func(c *client.Client, _ *fakesup.Supervisor) (any, error) { return c.Reload(ctx) },
			want:  api.ReloadResult{Added: []string{"cache"}, Removed: []string{}, Changed: []string{"web"}, Unchanged: []string{"db"}, Failed: []string{}},
			calls: []string{"Reload"}},
		{name: "POST /v1/reload with a failed overlap",
			setup: func(f *fakesup.Supervisor) {
				f.SetReload(supervisor.ReloadResult{Changed: []string{"web"}, Failed: []string{"web"}}, nil)
			},
			call:  func(c *client.Client, _ *fakesup.Supervisor) (any, error) { return c.Reload(ctx) },
			want:  api.ReloadResult{Added: []string{}, Removed: []string{}, Changed: []string{"web"}, Unchanged: []string{}, Failed: []string{"web"}},
			calls: []string{"Reload"}},
		{name: "POST /v1/reload broken config",
			setup: func(f *fakesup.Supervisor) {
				f.SetReload(supervisor.ReloadResult{}, config.Errors{
					{File: "services.toml", Line: 14, Key: "services.api.sockets[0].mode", Msg: `"0778" is not an octal mode like "0660"`},
					{File: "services.toml", Line: 21, Key: "services.web.user", Msg: `unknown user "nosuch"`},
				})
			},
			call: func(c *client.Client, _ *fakesup.Supervisor) (any, error) { return c.Reload(ctx) },
			err: &client.APIError{Status: 422, Message: "2 error(s) in the config; nothing was changed", Details: []string{
				`services.toml:14: services.api.sockets[0].mode: "0778" is not an octal mode like "0660"`,
				`services.toml:21: services.web.user: unknown user "nosuch"`,
			}},
			calls: []string{"Reload"}},
		{name: "GET /metrics",
			call: func(c *client.Client, _ *fakesup.Supervisor) (any, error) {
				m, err := c.Metrics(ctx)
				var up []string
				for l := range strings.Lines(m) {
					if strings.HasPrefix(l, "udsvisor_service_up{") || strings.HasPrefix(l, "udsvisor_service_restarts_total{") {
						up = append(up, l)
					}
				}
				return up, err
			},
			want: []string{
				"udsvisor_service_up{service=\"db\"} 0\n",
				"udsvisor_service_up{service=\"web\"} 1\n",
				"udsvisor_service_restarts_total{service=\"db\"} 0\n",
				"udsvisor_service_restarts_total{service=\"web\"} 2\n",
			},
			calls: []string{"List"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sock, f := controltest.Start(t, services()...)
			for _, l := range lines {
				f.Log("web", supervisor.LogLine(l))
			}
			if tt.setup != nil {
				tt.setup(f)
			}
			before := time.Now()
			got, err := tt.call(client.New(sock), f)
			after := time.Now()
			if tt.err != nil {
				var ae *client.APIError
				if !errors.As(err, &ae) || !reflect.DeepEqual(ae, tt.err) {
					t.Errorf("error %T %v, want %+v", err, err, *tt.err)
				}
				if !reflect.ValueOf(got).IsZero() {
					t.Errorf("with the error, got %+v", got)
				}
			} else if err != nil {
				t.Errorf("error %v", err)
			} else if got = normalise(t, f, got, before, after); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if calls := f.Calls(); !slices.Equal(calls, tt.calls) {
				t.Errorf("the supervisor saw %q, want %q", calls, tt.calls)
			}
		})
	}
}

// normalise checks the time fields of the services in got against the
// fake's state (Since and StartedAt as the supervisor has them, the
// uptime as the server computed it between before and after), then
// zeroes them.
func normalise(t *testing.T, f *fakesup.Supervisor, got any, before, after time.Time) any {
	t.Helper()
	check := func(s api.Service) api.Service {
		st := f.Service(s.Name)
		if !s.Since.Equal(st.Since) {
			t.Errorf("%s: since %v, want %v", s.Name, s.Since, st.Since)
		}
		switch {
		case st.Pid == 0 && (s.StartedAt != nil || s.UptimeSeconds != 0):
			t.Errorf("%s without a process: started at %v, uptime %v", s.Name, s.StartedAt, s.UptimeSeconds)
		case st.Pid != 0 && (s.StartedAt == nil || !s.StartedAt.Equal(st.StartedAt)):
			t.Errorf("%s: started at %v, want %v", s.Name, s.StartedAt, st.StartedAt)
		case st.Pid != 0:
			up := time.Duration(s.UptimeSeconds * float64(time.Second))
			// A millisecond of slack for the float's rounding.
			if lo, hi := before.Sub(st.StartedAt), after.Sub(st.StartedAt); up < lo-time.Millisecond || up > hi+time.Millisecond {
				t.Errorf("%s: uptime %v, want between %v and %v", s.Name, up, lo, hi)
			}
		}
		// Every process started when the service's did (the fake's
		// instances run side by side).
		for i, p := range s.Processes {
			if p.StartedAt != nil && !p.StartedAt.Equal(st.StartedAt) {
				t.Errorf("%s#%d: started at %v, want %v", s.Name, p.Instance, p.StartedAt, st.StartedAt)
			}
			s.Processes[i].StartedAt = nil
		}
		// A service of one instance has the one process the service's
		// own fields speak of; only several are compared in full.
		if len(s.Processes) == 1 {
			one := api.Process{Instance: 0, State: s.State, Pid: s.Pid, Restarts: s.Restarts, Failures: s.Failures,
				LastExit: s.LastExit, StatusText: s.StatusText}
			if !reflect.DeepEqual(s.Processes[0], one) {
				t.Errorf("%s: process %+v, want %+v", s.Name, s.Processes[0], one)
			}
			s.Processes = nil
		}
		s.Since, s.StartedAt, s.UptimeSeconds = time.Time{}, nil, 0
		return s
	}
	switch g := got.(type) {
	case api.Service:
		return check(g)
	case []api.Service:
		out := make([]api.Service, len(g))
		for i, s := range g {
			out[i] = check(s)
		}
		return out
	}
	return got
}
