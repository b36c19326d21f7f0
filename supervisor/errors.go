// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"errors"
	"fmt"
)

// Sentinel errors that callers (the control API, later) branch on with
// errors.Is.
var (
	// ErrUnknownService: no service of that name in the config.
	ErrUnknownService = errors.New("unknown service")
	// ErrNotRunning: the service has no live process to act on.
	ErrNotRunning = errors.New("service is not running")
	// ErrNotPaused: resume of a service that is not paused (nor being
	// paused) and has no process.
	ErrNotPaused = errors.New("service is not paused")
	// ErrStartFailed: a new process ended (or was killed) before it
	// started, so an overlapping restart kept the old ones.
	ErrStartFailed = errors.New("a new process failed to start")
	// ErrBadScale: a number of instances out of range.
	ErrBadScale = errors.New("bad number of instances")
	// ErrShuttingDown: udsvisor is stopping and takes no more requests.
	ErrShuttingDown = errors.New("udsvisor is shutting down")
	// ErrUpgrading: udsvisor is handing its services over to the binary
	// an upgrade executes, and takes no requests meanwhile.
	ErrUpgrading = errors.New("udsvisor is being upgraded; try again in a moment")
	// ErrReplaced: a reload is stopping this definition of the service
	// to replace or remove it; a request after the reload reaches the
	// new definition (or finds none).
	ErrReplaced = errors.New("service is being replaced by a reload; try again once it is done")
)

// errInternal reports an event that the state machine does not expect in
// state st: a bug, never the caller's fault.
func errInternal(event any, st State) error {
	return fmt.Errorf("internal error: %v in state %s", event, st)
}

// errStoppedBeforeStart answers a wait for a start that a stop or pause
// ended: what the operator asked, no failure.
var errStoppedBeforeStart = errors.New("the service was stopped before it started")
