// SPDX-License-Identifier: Apache-2.0

package api

import (
	"strings"
	"testing"
	"time"
)

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                     "0s",
		45*time.Second + 900*time.Millisecond: "45s",
		12*time.Minute + 5*time.Second:        "12m5s",
		3*time.Hour + 12*time.Minute + 59*time.Second: "3h12m",
		50 * time.Hour: "2d2h",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestWriteTable(t *testing.T) {
	var b strings.Builder
	err := WriteTable(&b, []Service{
		{Name: "api", State: "running", Pid: 4242, UptimeSeconds: 3725, Restarts: 2,
			Sockets: []Socket{{Name: "http", Path: "/run/api/http.sock"}, {Name: "admin", Address: "127.0.0.1:9000"}}},
		{Name: "worker-long-name", State: "failed"},
	})
	want := `
NAME              STATE    PID   UPTIME  RESTARTS  SOCKETS
api               running  4242  1h2m    2         http=/run/api/http.sock admin=127.0.0.1:9000
worker-long-name  failed   -     -       0         -
`[1:]
	if err != nil || b.String() != want {
		t.Errorf("WriteTable = %v\n%s\nwant\n%s", err, b.String(), want)
	}
}

// A STATUS column appears when a service sent STATUS=, and only then.
func TestWriteTableStatusText(t *testing.T) {
	var b strings.Builder
	err := WriteTable(&b, []Service{
		{Name: "api", State: "starting", Pid: 7, StatusText: "warming up: 3/10 caches"},
		{Name: "db", State: "stopped"},
	})
	want := `
NAME  STATE     PID  UPTIME  RESTARTS  SOCKETS  STATUS
api   starting  7    0s      0         -        warming up: 3/10 caches
db    stopped   -    -       0         -
`[1:]
	if err != nil || b.String() != want {
		t.Errorf("WriteTable = %v\n%q\nwant\n%q", err, b.String(), want)
	}
}

// A service of several processes is followed by a line for each.
func TestWriteTableInstances(t *testing.T) {
	var b strings.Builder
	started := time.Now().Add(-90 * time.Second)
	err := WriteTable(&b, []Service{{
		Name: "api", State: "running", Pid: 10, UptimeSeconds: 90, Restarts: 1,
		Sockets: []Socket{{Name: "http", Path: "/run/api.sock"}},
		Processes: []Process{
			{Instance: 0, State: "running", Pid: 10, StartedAt: &started, Restarts: 1},
			{Instance: 1, State: "backoff"},
			{Instance: 0, State: "stopping", Pid: 9, StartedAt: &started, Leaving: true},
		},
	}})
	want := `
NAME   STATE               PID  UPTIME  RESTARTS  SOCKETS
api    running             10   1m30s   1         http=/run/api.sock
api#0  running             10   1m30s   1
api#1  backoff             -    -       0
api#0  stopping (leaving)  9    1m30s   0
`[1:]
	if err != nil || b.String() != want {
		t.Errorf("WriteTable = %v\n%s\nwant\n%s", err, b.String(), want)
	}
}
