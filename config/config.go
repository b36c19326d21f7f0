// SPDX-License-Identifier: Apache-2.0

// Package config loads and validates a udsvisor services.toml.
//
// Load decodes strictly (an unknown key is an error), validates every
// service in one pass and reports all problems at once, each naming the
// file, the line and the full key, e.g.
//
//	services.toml:14: services.api.sockets[0].mode: "0778" is not an octal mode like "0660"
//
// The result is fully typed: modes are fs.FileMode, durations
// time.Duration, signals unix.Signal, users and groups numeric ids, and
// command[0] an absolute path. Nothing downstream parses strings or applies
// defaults of its own.
package config

import (
	"fmt"
	"io/fs"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults documented in services.toml.example.
const (
	DefaultControlSocket = "/run/udsvisor/control.sock"
	defaultSocketMode    = fs.FileMode(0o660)
	defaultDirectoryMode = fs.FileMode(0o755)
	defaultBacklog       = 4096
	defaultStopTimeout   = 10 * time.Second
	defaultUmask         = fs.FileMode(0o022)
	DefaultPath          = "/usr/local/bin:/usr/bin:/bin"
	defaultMinUptime     = time.Second
	defaultStartTimeout  = 90 * time.Second
	defaultStartLimit    = 10
	defaultControlMode   = fs.FileMode(0o660)
)

// Config is a validated services.toml.
type Config struct {
	// File is the path the config was loaded from, as given.
	File string
	// SHA256 is the digest of the file's bytes, which tells whether the
	// file still holds the config that runs.
	SHA256     [32]byte
	Supervisor Supervisor
	// Services sorted by name.
	Services []*Service
	// Warnings are problems that do not stop udsvisor from starting
	// (for example a world-connectable socket mode).
	Warnings Errors
}

// Supervisor holds the [supervisor] table.
type Supervisor struct {
	ControlSocket string
	ControlMode   fs.FileMode
	// ControlGroup and StatusGroup are group ids; -1 when unset.
	ControlGroup int
	StatusGroup  int
	LogFormat    string // "console" or "json"
}

// Restart is a service's restart policy.
type Restart string

// Restart policies.
const (
	RestartAlways    Restart = "always"
	RestartOnFailure Restart = "on-failure"
	RestartNever     Restart = "never"
)

// Ready is how a service's process shows that it has started.
type Ready string

// Readiness rules.
const (
	// ReadyStarted: the process has started once it took a connection
	// from one of its sockets, or lived min_uptime.
	ReadyStarted Ready = "started"
	// ReadyNotify: the process has started once it sent READY=1 to its
	// NOTIFY_SOCKET (sd_notify), within start_timeout.
	ReadyNotify Ready = "notify"
)

// RestartMode is how a restart replaces a service's processes.
type RestartMode string

// Restart modes.
const (
	// RestartStopStart: the old processes stop first; connections wait
	// in the backlog until the new ones accept.
	RestartStopStart RestartMode = "stop-start"
	// RestartOverlap: the new processes start beside the old ones, which
	// are told to stop once every new one has started; a new one that
	// fails to start leaves the old ones serving.
	RestartOverlap RestartMode = "overlap"
)

// MaxInstances bounds instances and ctl scale.
const MaxInstances = 256

// Start is when a service's first process starts.
type Start string

// Start modes.
const (
	// StartImmediate: at up, and whenever the restart policy says.
	StartImmediate Start = "immediate"
	// StartOnDemand: when a connection waits on one of its sockets; after
	// a process ends, the next connection starts the next one.
	StartOnDemand Start = "on-demand"
)

// Service is one [services.NAME] table.
type Service struct {
	Name string
	// Line is where [services.NAME] starts, for messages.
	Line int
	// Command is the argv; Command[0] is an absolute path resolved at load.
	Command []string
	// User and Group are the names as configured (or looked up from the ids).
	User  string
	Group string
	UID   uint32
	GID   uint32
	// Groups are the supplementary group ids, exactly as configured
	// (never root's, never the user's /etc/group memberships unless listed).
	Groups     []uint32
	Home       string // the user's home directory, for $HOME
	WorkingDir string // "/" when not configured
	// Environment is the configured environment as sorted KEY=VALUE pairs,
	// without PATH/HOME/USER/LOGNAME/LISTEN_* (those are added at launch
	// unless Environment sets PATH).
	Environment []string
	Restart     Restart
	StopSignal  unix.Signal
	StopTimeout time.Duration
	// MinUptime: a run shorter than this counts as a failed start for the
	// crash-loop back-off.
	MinUptime time.Duration
	// Instances is how many processes share the service's sockets, each
	// supervised on its own (UDSVISOR_INSTANCE=0..Instances-1).
	Instances int
	// RestartMode is how ctl restart and a reload replace them.
	RestartMode RestartMode
	// Start is when a process is started; IdleStop, with StartOnDemand,
	// stops a process that had no connection for that long (0: never).
	Start    Start
	IdleStop time.Duration
	// Ready is how a process shows that it has started.
	Ready Ready
	// StartTimeout bounds the wait for READY=1 (ReadyNotify only; 0
	// otherwise).
	StartTimeout time.Duration
	// Watchdog is how often a process must send WATCHDOG=1 once ready,
	// or be killed and restarted; 0: no watchdog (ReadyNotify only).
	Watchdog time.Duration
	// StartLimit is how many consecutive failed starts put the service
	// into the failed state; 0 means never give up.
	StartLimit int
	Umask      fs.FileMode
	// allowRoot is allow_root, which the checks alone need (T21).
	allowRoot bool
	// Limits are the configured resource limits, sorted by name; the
	// others are inherited from udsvisor.
	Limits []Limit
	// AmbientCaps are the capabilities the service keeps (permitted,
	// effective, inheritable and ambient: they survive the exec), as
	// unix.CAP_* numbers in ascending order; AmbientCapNames are the same
	// as CAP_ names, for display. None by default.
	AmbientCaps     []uintptr
	AmbientCapNames []string
	Sockets         []*Socket
	// Proxy are the routes `udsvisor proxy` generates for the service;
	// none means the service is not exposed through the proxy.
	Proxy []*Route
	// Relay, if not nil, runs the service in a network namespace of its
	// own behind a relay to its TCP port.
	Relay *Relay
}

// Socket is one [[services.NAME.sockets]] entry: a listening socket that
// udsvisor binds and passes to the service as fd 3+Index.
type Socket struct {
	// Key is the full key for messages, e.g. services.api.sockets[0].
	Key   string
	Line  int
	Index int
	// Name is the LISTEN_FDNAMES entry.
	Name string
	// Path is set for a Unix socket, Addr for TCP; exactly one of them.
	Path string
	Addr netip.AddrPort
	// public is public, which the checks alone need (T22).
	public bool
	// Owner and Group of the socket file, and its modes (Unix only; the
	// modes are zero for TCP).
	OwnerName     string
	GroupName     string
	UID           uint32
	GID           uint32
	Mode          fs.FileMode
	DirectoryMode fs.FileMode
	Backlog       int
	// Stdin hands the socket to the command as its stdin (fd 0), not at
	// fd 3 and up: for servers that take an inherited socket there.
	Stdin bool
	// FD is the socket's fd in the command: 0 for stdin, else 3, 4, ...
	FD int
}

// IsUnix reports whether the socket is a Unix domain socket.
func (s *Socket) IsUnix() bool { return s.Path != "" }

// String is the path or the TCP address.
func (s *Socket) String() string {
	if s.IsUnix() {
		return s.Path
	}
	return s.Addr.String()
}

// Error is one problem in a config file.
type Error struct {
	File string
	Line int // 0 when unknown
	Key  string
	Msg  string
	// Err is the underlying error when there is one (an I/O error, the
	// decoder's), for errors.Is and errors.As.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		b.WriteString(": ")
		b.WriteString(e.Key)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem found in one load, in file order.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap returns the errors, for errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}
