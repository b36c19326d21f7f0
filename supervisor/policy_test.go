// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// min_uptime is an hour in these configs, so that a process can only
// count as started by taking a connection.
const servingConfig = `
[services.web]
command = ["$APP"]
user = "udsv-a"
min_uptime = "1h"
start_limit = 2

[[services.web.sockets]]
name = "http"
path = "$DIR/web.sock"
`

// A process that took a connection has started: when it dies, the next
// one starts at once, however young it was and however often it
// happens. Here each process lives a few milliseconds, far less than
// min_uptime, and is killed five times with start_limit = 2; none of
// those deaths is a failed start.
func TestServingProcessRestartsWithoutBackoff(t *testing.T) {
	users(t)
	h := start(t, servingConfig)
	sock := filepath.Join(h.dir, "web.sock")
	pid := h.status("web").Pid
	for i := range 5 {
		if err := unix.Kill(pid, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Sent while no process accepts: the request waits in the
		// backlog, so the next process starts with a connection
		// waiting and takes it.
		rep, err := getReport(sock)
		if err != nil {
			t.Fatalf("kill %d: %v", i+1, err)
		}
		if rep.Pid == pid {
			t.Fatalf("kill %d: answered by the killed pid %d", i+1, pid)
		}
		// The status is published once the launch is over, which may
		// be a moment after the new process has answered.
		st := h.waitFor("web", fmt.Sprintf("running with pid %d", rep.Pid), func(st Status) bool {
			return st.State == Running && st.Pid == rep.Pid
		})
		if st.Failures != 0 {
			t.Fatalf("kill %d: running pid %d with %d failures; want none", i+1, st.Pid, st.Failures)
		}
		if age := time.Since(st.StartedAt); age > time.Minute {
			t.Fatalf("kill %d: process is %v old", i+1, age)
		}
		pid = st.Pid
	}
	if st := h.status("web"); st.Restarts != 5 {
		t.Errorf("restarts %d, want 5", st.Restarts)
	}
}

// A process that runs but takes no connection before it dies, and dies
// before min_uptime, has not started: start_limit such deaths in a row
// leave the service failed, with no process.
func TestUnservingDeathsEndInFailed(t *testing.T) {
	users(t)
	h := start(t, servingConfig)
	for i := range 2 {
		st := h.waitState("web", Starting)
		if st.Failures != i {
			t.Fatalf("death %d: %d failures before it, want %d", i+1, st.Failures, i)
		}
		if err := unix.Kill(st.Pid, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Wait for the exit to be seen before the next look.
		h.waitFor("web", fmt.Sprintf("pid %d gone", st.Pid), func(now Status) bool { return now.Pid != st.Pid })
	}
	st := h.waitState("web", Failed)
	if st.Failures != 2 || st.Pid != 0 {
		t.Errorf("failed with %d failures and pid %d; want 2 and none", st.Failures, st.Pid)
	}
}

// 1,000 services, each with its socket and its process, start, all run,
// and stop leaving no process and no socket behind.
func TestThousandServicesStartAndStop(t *testing.T) {
	u := users(t)
	dir := testutil.RunDir(t)
	var b strings.Builder
	const n = 1000
	for i := range n {
		fmt.Fprintf(&b, "[services.s%d]\ncommand = [\"/bin/sleep\", \"infinity\"]\nuser = \"udsv-a\"\n", i)
		fmt.Fprintf(&b, "[[services.s%d.sockets]]\npath = \"%s/s%d.sock\"\n\n", i, dir, i)
	}
	h := startCfg(t, dir, parse(t, b.String()))
	svcs, err := h.sup.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != n {
		t.Fatalf("%d services listed, want %d", len(svcs), n)
	}
	for _, s := range svcs {
		if s.Pid == 0 || !alive(s.Pid) {
			t.Fatalf("%s: %s with pid %d", s.Name, s.State, s.Pid)
		}
		st, err := testutil.ProcStatus(s.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if uid := strings.Fields(st["Uid"]); len(uid) == 0 || uid[0] != fmt.Sprint(u.UID) {
			t.Fatalf("%s: pid %d runs as uid %v", s.Name, s.Pid, st["Uid"])
		}
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs {
		if alive(s.Pid) {
			t.Errorf("%s: pid %d outlived the stop", s.Name, s.Pid)
		}
	}
	// Public names and private links alike are gone; the directory,
	// which udsvisor did not create, stays.
	left, err := os.ReadDir(dir)
	if err != nil || len(left) != 0 {
		t.Errorf("left in %s: %d entries, %v", dir, len(left), err)
	}
}
