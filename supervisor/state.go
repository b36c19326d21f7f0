// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"time"

	"github.com/udsvisor/udsvisor/config"
)

// State is where a service is in its life cycle. See the package doc for
// the transitions.
type State string

// The states of a service.
const (
	// Stopped: no process, and none wanted (initial, or after stop).
	Stopped State = "stopped"
	// Starting: a process runs but has not yet shown that it works:
	// it has neither taken a connection nor lived MinUptime, or, with
	// ready = "notify", not yet sent READY=1.
	Starting State = "starting"
	// Running: the process has started (see Starting).
	Running State = "running"
	// Reloading: a started process said RELOADING=1 and has not yet
	// said READY=1 again (ready = "notify").
	Reloading State = "reloading"
	// Backoff: the process ended and a restart is scheduled.
	Backoff State = "backoff"
	// Stopping: StopSignal was sent; waiting for the process to end,
	// SIGKILL after StopTimeout.
	Stopping State = "stopping"
	// Waiting: an on-demand service without a process; the next
	// connection to one of its sockets starts one.
	Waiting State = "waiting"
	// Paused: stopped by ctl pause, sockets bound: connections wait in
	// the backlog until ctl resume starts a process.
	Paused State = "paused"
	// Exited: the process ended and the restart policy says to leave it.
	Exited State = "exited"
	// Failed: StartLimit consecutive starts failed; udsvisor gave up
	// until an operator starts it again.
	Failed State = "failed"
)

// Status is a copy of a service's state, safe to keep and print. For a
// service of several instances, the fields that speak of one process
// (Pid, StartedAt, MainPid, StatusText) are those of the lowest index
// that runs, and Instances has each in full.
type Status struct {
	Name  string
	State State
	// Since is when State was entered.
	Since time.Time
	// Pid is the main process, 0 when none runs the command (also
	// while the launch helper prepares it).
	Pid int
	// StartedAt is when Pid was started.
	StartedAt time.Time
	// Restarts counts processes started after the first one of each
	// instance.
	Restarts int
	// Failures counts consecutive failed starts (reset once a process
	// has started); the most of any instance.
	Failures int
	// LastExit is how the last process to end ended; nil before any.
	LastExit *Exit
	// LastError is why the last start failed before the command ran.
	LastError string
	// StatusText is what the process last sent as STATUS= (ready =
	// "notify"), control characters escaped.
	StatusText string
	// MainPid is what the process sent as MAINPID=, a process of its
	// process group; 0 if none.
	MainPid int
	// Sockets are the service's sockets in fd order (fd 3 first), as
	// configured; shared, never to be modified.
	Sockets []*config.Socket
	// Instances are the service's processes, by index, then those on
	// their way out (an overlapping restart's old ones, scale down's).
	Instances []InstanceStatus
	// Wanted is how many instances the service has: instances, or what
	// ctl scale set.
	Wanted int
}

// InstanceStatus is one instance of a service.
type InstanceStatus struct {
	Index     int
	State     State
	Since     time.Time
	Pid       int
	StartedAt time.Time
	MainPid   int
	Restarts  int
	Failures  int
	LastExit  *Exit
	LastError string
	// StatusText is the instance's last STATUS=.
	StatusText string
	// Leaving is set for an instance being replaced or scaled away.
	Leaving bool
}

// States lists every state, in the order of the life cycle.
func States() []State {
	return []State{Stopped, Waiting, Starting, Running, Reloading, Backoff, Stopping, Paused, Exited, Failed}
}

// backoffDelay is the pause before the next start after the n-th
// consecutive failure: none after the first (a service that was healthy
// and crashed, or was killed, comes back at once, the socket having kept
// its connections queued), then 100 ms doubling to a 30 s cap, so a crash
// loop cannot spin (daemontools, s6 and systemd all pace restarts).
func backoffDelay(n int) time.Duration {
	const (
		first = 100 * time.Millisecond
		max   = 30 * time.Second
	)
	if n <= 1 {
		return 0
	}
	d := first
	for i := 2; i < n; i++ {
		d *= 2
		if d >= max {
			return max
		}
	}
	return d
}
