// SPDX-License-Identifier: Apache-2.0

//go:build linux

package peer

import (
	"os/exec"
	"path/filepath"
)

// Handoff is how a service's process gets its listening socket.
type Handoff int

const (
	// FD3: inherited as fd 3 with LISTEN_FDS and LISTEN_PID (udsvisor).
	FD3 Handoff = iota
	// FD0: inherited as fd 0 (s6-fdholder-retrieve execs with it).
	FD0
	// Bind: the process binds the socket path itself.
	Bind
)

type kind int

const (
	kindBackend kind = iota
	kindHolder
	kindCommand
)

// Service is one service: a name, its Unix socket path ("" for none)
// and its program, which the driver adapts to the peer's Handoff.
type Service struct {
	Name   string
	Socket string
	kind   kind
	prog   string   // the backend, or the command's argv[0]
	args   []string // a command's arguments
}

// Backend is the benchmark's HTTP backend (bench/backend) at prog,
// serving socket.
func Backend(name, prog, socket string) Service {
	return Service{Name: name, Socket: socket, kind: kindBackend, prog: prog}
}

// Holder is the smallest service that holds socket: sleep infinity (the
// peer's own copy of /bin/sleep, see execWatch), which keeps the
// inherited socket open and does nothing, so a start-up
// figure measures the supervisor and not the child. Where the service
// must bind its socket itself (supervisord, runit), sleep is preceded
// by s6-ipcserver-socketbinder (a small C program from s6 that binds
// the path, listens and execs the rest of its command line), the
// cheapest honest stand-in for an app that binds; without s6 installed
// the backend at backend binds instead.
func Holder(name, socket, backend string) Service {
	return Service{Name: name, Socket: socket, kind: kindHolder, prog: backend}
}

// Command is a service running argv as is, with no socket.
func Command(name string, argv ...string) Service {
	return Service{Name: name, kind: kindCommand, prog: argv[0], args: argv[1:]}
}

// binder is s6-ipcserver-socketbinder's path, "" when s6 is missing.
func binder() string {
	p, err := exec.LookPath("s6-ipcserver-socketbinder")
	if err != nil {
		return ""
	}
	return p
}

// argv is the service's command line under handoff h, with sleep the
// holder program (the peer's own copy of /bin/sleep).
func (s Service) argv(h Handoff, sleep string) []string {
	switch s.kind {
	case kindBackend:
		switch h {
		case FD0:
			return []string{s.prog, "-fd", "0"}
		case Bind:
			return []string{s.prog, "-bind", s.Socket}
		}
		return []string{s.prog}
	case kindHolder:
		if h == Bind {
			if b := binder(); b != "" {
				return []string{b, s.Socket, sleep, "infinity"}
			}
			return []string{s.prog, "-bind", s.Socket}
		}
		return []string{sleep, "infinity"}
	}
	return append([]string{s.prog}, s.args...)
}

// comm is the kernel's name for the service's process once it runs its
// final program under handoff h, "" for a command (it is not waited
// for).
func (s Service) comm(h Handoff) string {
	switch {
	case s.kind == kindCommand:
		return ""
	case s.kind == kindHolder && (h != Bind || binder() != ""):
		return "sleep"
	}
	return filepath.Base(s.prog)
}
