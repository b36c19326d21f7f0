// SPDX-License-Identifier: Apache-2.0

package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os/user"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// messages returns the problems of a Parse as printed lines.
func messages(es Errors) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Error()
	}
	return out
}

// parseErrors parses src and returns its error lines (nil when valid).
func parseErrors(t *testing.T, src string) []string {
	t.Helper()
	cfg, err := Parse("services.toml", []byte(src))
	if err == nil {
		if cfg == nil {
			t.Fatal("Parse returned neither config nor error")
		}
		return nil
	}
	if cfg != nil {
		t.Errorf("Parse returned a config along with errors")
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error is %T, not Errors: %v", err, err)
	}
	return messages(es)
}

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	cfg, err := Parse("services.toml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

func lookupIDs(t *testing.T, name string) (uid, gid uint32) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := strconv.ParseUint(u.Uid, 10, 32)
	b, _ := strconv.ParseUint(u.Gid, 10, 32)
	return uint32(a), uint32(b)
}

func lookupGID(t *testing.T, name string) uint32 {
	t.Helper()
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.ParseUint(g.Gid, 10, 32)
	return uint32(n)
}

func TestParseFull(t *testing.T) {
	cfg := mustParse(t, `
[supervisor]
control_socket = "/run/udsv-config-test/control.sock"
control_mode = "0666"
control_group = "adm"
status_group = 33
log_format = "json"

[services.api]
command = ["true", "app:app", "--fd", "3"]
user = "daemon"
group = "www-data"
supplementary_groups = ["nogroup", 33]
working_dir = "/srv/api"
environment = { APP_ENV = "prod", PATH = "/usr/bin:/bin" }
restart = "on-failure"
stop_signal = "int"
stop_timeout = "1m30s"
min_uptime = "500ms"
start_limit = 0
umask = "027"

[[services.api.sockets]]
name = "http"
path = "/run/udsv-config-test/api.sock"
owner = "www-data"
group = 65534
mode = "0620"
directory_mode = "0750"
backlog = 128

[[services.api.sockets]]
listen = "127.0.0.1:8080"

[services.worker]
command = ["/bin/sh", "-c", "exit 0"]
user = "1"
stop_signal = 1

[[services.worker.sockets]]
listen = "[2001:db8::1]:443"
public = true
`)
	daemonUID, daemonGID := lookupIDs(t, "daemon")
	wwwGID := lookupGID(t, "www-data")
	nogroup := lookupGID(t, "nogroup")
	wantSup := Supervisor{
		ControlSocket: "/run/udsv-config-test/control.sock",
		ControlMode:   0o666,
		ControlGroup:  int(lookupGID(t, "adm")),
		StatusGroup:   int(wwwGID),
		LogFormat:     "json",
	}
	if !reflect.DeepEqual(cfg.Supervisor, wantSup) {
		t.Errorf("Supervisor = %+v, want %+v", cfg.Supervisor, wantSup)
	}
	if len(cfg.Services) != 2 || cfg.Services[0].Name != "api" || cfg.Services[1].Name != "worker" {
		t.Fatalf("services not sorted by name: %v", cfg.Services)
	}
	api := serviceNamed(cfg, "api")
	wantAPI := &Service{
		Name:        "api",
		Line:        9,
		Command:     []string{"/usr/bin/true", "app:app", "--fd", "3"},
		User:        "daemon",
		Group:       "www-data",
		UID:         daemonUID,
		GID:         wwwGID,
		Groups:      []uint32{nogroup, wwwGID},
		Home:        "/usr/sbin",
		WorkingDir:  "/srv/api",
		Environment: []string{"APP_ENV=prod", "PATH=/usr/bin:/bin"},
		Restart:     RestartOnFailure,
		StopSignal:  unix.SIGINT,
		StopTimeout: 90 * time.Second,
		MinUptime:   500 * time.Millisecond,
		Ready:       ReadyStarted,
		Start:       StartImmediate,
		Instances:   1,
		RestartMode: RestartStopStart,
		StartLimit:  0,
		Umask:       0o027,
		Sockets: []*Socket{{
			Key: "services.api.sockets[0]", Line: 23, Index: 0, Name: "http",
			Path:      "/run/udsv-config-test/api.sock",
			OwnerName: "www-data", UID: lookupUIDOnly(t, "www-data"),
			GroupName: "nogroup", GID: nogroup,
			Mode: 0o620, DirectoryMode: 0o750, Backlog: 128, FD: 3,
		}, {
			Key: "services.api.sockets[1]", Line: 32, Index: 1, Name: "api",
			Addr:    netip.MustParseAddrPort("127.0.0.1:8080"),
			Backlog: defaultBacklog, FD: 4,
		}},
	}
	if !reflect.DeepEqual(api, wantAPI) {
		t.Errorf("api =\n%s\nwant\n%s", dump(api), dump(wantAPI))
	}
	worker := serviceNamed(cfg, "worker")
	wantWorker := &Service{
		Name:        "worker",
		Line:        35,
		Command:     []string{"/bin/sh", "-c", "exit 0"},
		User:        "daemon",
		Group:       "daemon",
		UID:         daemonUID,
		GID:         daemonGID,
		Home:        "/usr/sbin",
		WorkingDir:  "/",
		Restart:     RestartAlways,
		StopSignal:  unix.SIGHUP,
		StopTimeout: defaultStopTimeout,
		MinUptime:   defaultMinUptime,
		Ready:       ReadyStarted,
		Start:       StartImmediate,
		Instances:   1,
		RestartMode: RestartStopStart,
		StartLimit:  defaultStartLimit,
		Umask:       defaultUmask,
		Sockets: []*Socket{{
			Key: "services.worker.sockets[0]", Line: 40, Index: 0, Name: "worker",
			Addr: netip.MustParseAddrPort("[2001:db8::1]:443"), public: true,
			Backlog: defaultBacklog, FD: 3,
		}},
	}
	if !reflect.DeepEqual(worker, wantWorker) {
		t.Errorf("worker =\n%s\nwant\n%s", dump(worker), dump(wantWorker))
	}
	if serviceNamed(cfg, "nosuch") != nil {
		t.Error(`Service("nosuch") is not nil`)
	}
	// Two services as daemon: a warning, not an error.
	wantWarn := []string{`services.toml:37: services.worker.user: user "daemon" is also the user of services.api; the two can signal each other and read each other's /proc`}
	if got := messages(cfg.Warnings); !reflect.DeepEqual(got, wantWarn) {
		t.Errorf("warnings:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantWarn, "\n"))
	}
}

func lookupUIDOnly(t *testing.T, name string) uint32 {
	t.Helper()
	uid, _ := lookupIDs(t, name)
	return uid
}

func dump(s *Service) string {
	v := *s
	v.Sockets = nil
	out := fmt.Sprintf("%+v", v)
	for _, so := range s.Sockets {
		out += fmt.Sprintf("\n  %+v", *so)
	}
	return out
}

// TestParseDefaults pins every default of a minimal service.
func TestParseDefaults(t *testing.T) {
	cfg := mustParse(t, `
[services.min]
command = ["true"]
user = "daemon"
[[services.min.sockets]]
path = "/run/udsv-config-test/min.sock"
`)
	if got, want := cfg.Supervisor, (Supervisor{
		ControlSocket: DefaultControlSocket, ControlMode: defaultControlMode,
		ControlGroup: -1, StatusGroup: -1, LogFormat: "console",
	}); got != want {
		t.Errorf("Supervisor = %+v, want %+v", got, want)
	}
	s := serviceNamed(cfg, "min")
	uid, gid := lookupIDs(t, "daemon")
	if s.Restart != RestartAlways || s.StopSignal != unix.SIGTERM || s.StopTimeout != 10*time.Second ||
		s.MinUptime != time.Second || s.StartLimit != 10 || s.Umask != 0o022 || s.WorkingDir != "/" ||
		s.Groups != nil || s.Environment != nil || s.allowRoot || s.Group != "daemon" || s.GID != gid {
		t.Errorf("defaults: %+v", s)
	}
	so := s.Sockets[0]
	if so.Name != "min" || so.UID != uid || so.GID != gid || so.OwnerName != "daemon" || so.GroupName != "daemon" ||
		so.Mode != fs.FileMode(0o660) || so.DirectoryMode != fs.FileMode(0o755) || so.Backlog != 4096 || !so.IsUnix() {
		t.Errorf("socket defaults: %+v", so)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
}

func TestEmptyConfig(t *testing.T) {
	cfg := mustParse(t, "")
	if len(cfg.Services) != 0 || cfg.Supervisor.ControlSocket != DefaultControlSocket {
		t.Errorf("empty config: %+v", cfg)
	}
}

func TestSignals(t *testing.T) {
	for in, want := range map[string]unix.Signal{
		`"SIGTERM"`: unix.SIGTERM, `"TERM"`: unix.SIGTERM, `"term"`: unix.SIGTERM, `"SigQuit"`: unix.SIGQUIT,
		`"9"`: unix.SIGKILL, `2`: unix.SIGINT, `"usr1"`: unix.SIGUSR1,
	} {
		cfg := mustParse(t, "[services.a]\ncommand = [\"true\"]\nuser = \"daemon\"\nstop_signal = "+in+"\n")
		if got := serviceNamed(cfg, "a").StopSignal; got != want {
			t.Errorf("stop_signal = %s: got %v, want %v", in, got, want)
		}
	}
}

// serviceNamed returns the service of cfg called name, or nil.
func serviceNamed(cfg *Config, name string) *Service {
	i := slices.IndexFunc(cfg.Services, func(s *Service) bool { return s.Name == name })
	if i < 0 {
		return nil
	}
	return cfg.Services[i]
}
