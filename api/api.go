// SPDX-License-Identifier: Apache-2.0

// Package api holds the JSON types of udsvisor's control API (version 1),
// shared by the server (package control) and the client (package client).
// Field names are the wire format: change them only with a new API
// version.
package api

import "time"

// Service is a service's state, as GET /v1/services and
// GET /v1/services/{name} return it.
type Service struct {
	Name string `json:"name"`
	// State is a supervisor.State as a string; supervisor/state.go owns
	// the names, so none is listed here to drift.
	State string `json:"state"`
	// Since is when State was entered.
	Since time.Time `json:"since"`
	// Pid is the main process (of the lowest instance that runs), 0 when
	// none runs.
	Pid int `json:"pid"`
	// Pids are the service's live processes, one per instance that runs
	// (and those an overlapping restart is replacing); empty when none
	// runs.
	Pids []int `json:"pids"`
	// Instances is how many processes of the service run.
	Instances int `json:"instances"`
	// WantedInstances is how many it has when all run: the config's
	// instances, or what ctl scale set.
	WantedInstances int `json:"wanted_instances"`
	// Processes are the service's instances, by index, then those on
	// their way out.
	Processes []Process `json:"processes"`
	// StartedAt is when Pid started; nil when none runs.
	StartedAt *time.Time `json:"started_at,omitempty"`
	// UptimeSeconds is the age of Pid; 0 when none runs.
	UptimeSeconds float64 `json:"uptime_seconds"`
	Restarts      int     `json:"restarts"`
	// Failures counts consecutive failed starts.
	Failures  int    `json:"failures"`
	LastExit  *Exit  `json:"last_exit,omitempty"`
	LastError string `json:"last_error,omitempty"`
	// StatusText is what the process last sent as STATUS= on its
	// NOTIFY_SOCKET (ready = "notify").
	StatusText string `json:"status_text,omitempty"`
	// MainPid is the process the service named with MAINPID=, one of
	// its process group; 0 if none.
	MainPid int      `json:"main_pid,omitempty"`
	Sockets []Socket `json:"sockets"`
}

// Process is one instance of a service: a process supervised on its own.
type Process struct {
	// Instance is its index, UDSVISOR_INSTANCE in its environment.
	Instance int    `json:"instance"`
	State    string `json:"state"`
	// Pid is 0 when none runs.
	Pid       int        `json:"pid"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	Restarts  int        `json:"restarts"`
	Failures  int        `json:"failures"`
	LastExit  *Exit      `json:"last_exit,omitempty"`
	// StatusText is its last STATUS= (ready = "notify").
	StatusText string `json:"status_text,omitempty"`
	// Leaving is set for a process that an overlapping restart replaces
	// or that scaling down stops.
	Leaving bool `json:"leaving,omitempty"`
}

// Exit is how a process ended.
type Exit struct {
	Pid int `json:"pid"`
	// Code is the exit status, nil when the process was killed.
	Code *int `json:"code,omitempty"`
	// Signal is the signal that killed it ("SIGKILL"), empty otherwise.
	Signal string    `json:"signal,omitempty"`
	Time   time.Time `json:"time"`
	// Description reads "exited with status 1" or "killed by SIGKILL".
	Description string `json:"description"`
}

// Socket is one of a service's listening sockets.
type Socket struct {
	Name string `json:"name"` // the LISTEN_FDNAMES entry
	FD   int    `json:"fd"`   // its fd number in the service: 3, 4, ..., or 0 (stdin = true)
	// Path is set for a Unix socket, Address ("127.0.0.1:8080") for TCP.
	Path    string `json:"path,omitempty"`
	Address string `json:"address,omitempty"`
	Owner   string `json:"owner,omitempty"` // Unix only
	Group   string `json:"group,omitempty"` // Unix only
	Mode    string `json:"mode,omitempty"`  // Unix only, "0660"
}

// LogLine is one line a service's process wrote.
type LogLine struct {
	Time   time.Time `json:"time"`
	Pid    int       `json:"pid"`
	Stream string    `json:"stream"` // "stdout" or "stderr"
	// Instance is the index of the process among the service's
	// instances (UDSVISOR_INSTANCE).
	Instance int    `json:"instance"`
	Line     string `json:"line"`
}

// SignalRequest is the body of POST /v1/services/{name}/signal.
type SignalRequest struct {
	// Signal is a name with or without the SIG prefix ("HUP", "SIGUSR1").
	Signal string `json:"signal"`
}

// ScaleRequest is the body of POST /v1/services/{name}/scale.
type ScaleRequest struct {
	// Instances is the number of processes wanted, 1 to 256.
	Instances int `json:"instances"`
}

// ReloadResult is the answer of POST /v1/reload.
type ReloadResult struct {
	Added     []string `json:"added"`
	Removed   []string `json:"removed"`
	Changed   []string `json:"changed"`
	Unchanged []string `json:"unchanged"`
	// Failed are changed services of restart_mode = "overlap" whose new
	// definition did not start: the old one keeps running.
	Failed []string `json:"failed"`
}

// Upgrade is the answer of GET /v1/upgrade, and of POST /v1/upgrade with
// the values before the upgrade it begins.
type Upgrade struct {
	// Version and Pid are the running udsvisor's; an upgrade keeps the
	// pid and changes the version.
	Version string `json:"version"`
	Pid     int    `json:"pid"`
	// Upgrades counts the upgrades this process went through.
	Upgrades int `json:"upgrades"`
	// LastError says why the last upgrade that failed did, empty if none
	// did; LastErrorAt is when.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
	// Details lists every problem when there are several (a broken
	// config on reload: one file:line: key: message each).
	Details []string `json:"details,omitempty"`
}
