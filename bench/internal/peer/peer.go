// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Package peer drives each supervisor the benchmark compares (udsvisor,
// supervisord, s6 with s6-fdholder-daemon, runit) through one small
// interface: run N services, each with its Unix socket and command,
// from a scratch directory of its own; say which processes are the
// supervisor side; find a service's process; run the peer's own status
// command; and kill it all at the end.
//
// How each peer gets a service's socket to the service:
//   - udsvisor binds it and passes it as fd 3 with LISTEN_FDS (a
//     [[services.NAME.sockets]] entry); the socket outlives every
//     process of the service.
//   - s6 keeps it in s6-fdholder-daemon: bound once by
//     s6-ipcserver-socketbinder and stored with s6-fdholder-store when the
//     peer starts; each run script does s6-fdholder-retrieve and execs
//     the service with the socket as fd 0. It too outlives the process.
//   - supervisord and runit have no way to hold a socket for a program
//     (supervisord's fcgi-program is for FastCGI), so the service binds
//     its own socket, as apps under them do: the socket dies with each
//     process and is made again by the next.
package peer

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/udsvisor/udsvisor/bench/internal/report"
)

// User is the account every service runs as: it exists on every Debian
// machine, and the benchmark creates no users.
const User = "nobody"

// Peer is one supervisor running a set of services.
type Peer interface {
	// Name is the peer's column in the table: report.Udsvisor, ...
	Name() string
	// Dir is the peer's scratch directory, where callers may put socket
	// paths and files of their own; Stop removes it.
	Dir() string
	// Prepare writes the configuration for services; nothing runs yet,
	// so that a start-up figure measures the supervisor, not the writing.
	Prepare(services []Service) error
	// Launch starts the supervisor (and, for s6, stores the sockets in
	// the fd holder); it returns without waiting for the services.
	Launch(ctx context.Context) error
	// WaitRunning returns once every service with a program has its
	// process running and its socket file in place, with the moment that
	// was first true (which may be before the return: a check of the
	// whole process tree follows, and is not the peer's time).
	WaitRunning(ctx context.Context, timeout time.Duration) (time.Time, error)
	// Pids are the supervisor side's processes: the supervisor and its
	// per-service helpers, not the services.
	Pids() []int
	// MainPid is the service's current process, 0 when none runs.
	MainPid(ctx context.Context, service string) (int, error)
	// State is the peer's own word for the service's state.
	State(ctx context.Context, service string) (string, error)
	// Status runs the peer's status command for every service, as one
	// operator command, and waits for it; the caller times it.
	Status(ctx context.Context) error
	// Stop kills the supervisor with its whole process tree and removes
	// the scratch directory. Safe to call at any point, and twice.
	Stop() error
}

// SocketHolder says who holds a peer's service sockets, for the table.
func SocketHolder(name string, opt Options) string {
	switch {
	case name == report.Udsvisor && !opt.SelfBind:
		return "udsvisor (fd 3)"
	case name == report.S6:
		return "s6-fdholder-daemon (fd 0)"
	}
	return "the app (-bind)"
}

// Options changes how udsvisor runs a service; the other peers ignore it.
type Options struct {
	// SelfBind: udsvisor only supervises and the service binds its own
	// socket (-bind PATH), as apps that do not take a socket do.
	SelfBind bool
	// Proxy adds a [[services.NAME.proxy]] route to every service with a
	// socket, for `udsvisor proxy nginx`.
	Proxy bool
}

// New returns the driver for peer, working in dir (created, and removed
// by Stop).
func New(name string, env *report.Env, dir string, opt Options) (Peer, error) {
	sleep := filepath.Join(dir, "bin", "sleep")
	if err := copyFile("/bin/sleep", sleep); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	b := base{name: name, env: env, dir: dir, sleep: sleep}
	switch name {
	case report.Udsvisor:
		return &Udsvisor{base: b, opt: opt}, nil
	case report.Supervisord:
		return &supervisord{base: b}, nil
	case report.S6:
		return &s6{base: b}, nil
	case report.Runit:
		return &runit{base: b}, nil
	}
	return nil, fmt.Errorf("unknown peer %q", name)
}
