// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

// Limits against the real binary (SECURITY-NOTES section 6): a NOFILE
// limit exhausted by control connections, and a crash loop's pace.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
	"github.com/udsvisor/udsvisor/internal/testutil/testapp"
)

const emfileConfig = `
[supervisor]
control_socket = "$DIR/ctl/control.sock"

[services.web]
command = ["$APP"]
user = "udsv-a"
[[services.web.sockets]]
path = "$DIR/web/web.sock"
`

// webPid asks the test app behind sock for its pid.
func webPid(sock string) (int, error) {
	body, err := get(sock)
	if err != nil {
		return 0, err
	}
	var rep testapp.Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		return 0, fmt.Errorf("%q: %w", body, err)
	}
	return rep.Pid, nil
}

// With RLIMIT_NOFILE at 64 and 200 idle control connections held open,
// udsvisor still restarts a child killed with SIGKILL: control
// connections may not take the fds a restart needs. Once they close, the
// control API answers again. The child gets the soft NOFILE limit
// udsvisor was started with.
func TestFaultEMFILE(t *testing.T) {
	testutil.EnsureUser(t, "udsv-a")
	prlimit := testutil.RequireCommand(t, "prlimit")
	dir := testutil.RunDir(t)
	writeFaultConfig(t, dir, emfileConfig)
	e := startWrapped(t, dir, testutil.UpOptions{Wrap: []string{prlimit, "--nofile=64:64"}})
	sock := filepath.Join(dir, "web", "web.sock")
	// Up, so the socket listens: the request waits for the first accept.
	before, err := webPid(sock)
	if err != nil {
		t.Fatal(err)
	}

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	refused := 0
	for i := 0; i < 200; i++ {
		c, err := net.DialTimeout("unix", e.sock, time.Second)
		if err != nil {
			refused++ // EAGAIN: the backlog is full
			continue
		}
		conns = append(conns, c)
	}
	fds, _ := testutil.ProcFDs(e.up.Pid())
	t.Logf("%d control connections open, %d refused; udsvisor has %d fds", len(conns), refused, len(fds))

	if err := unix.Kill(before, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Once udsvisor has reaped it, the next request waits in the backlog
	// for the new process.
	e.up.WaitExit(t, "web", before)
	after, err := webPid(sock)
	if err != nil || after == before {
		t.Fatalf("after the SIGKILL of pid %d: answered by pid %d (%v)", before, after, err)
	}
	checkNofile(t, after, "64 64")

	for _, c := range conns {
		c.Close()
	}
	conns = nil
	// A poll: nothing tells when udsvisor has seen the connections
	// close and freed their fds.
	testutil.Eventually(t, 15*time.Second, func() error {
		_, err := e.services(t)
		return err
	})
}

// checkNofile checks the soft and hard NOFILE limits of pid.
func checkNofile(t *testing.T, pid int, want string) {
	t.Helper()
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(limits), "\n") {
		if f := strings.Fields(l); len(f) >= 5 && strings.HasPrefix(l, "Max open files") {
			if got := f[3] + " " + f[4]; got != want {
				t.Errorf("pid %d: NOFILE soft and hard limits %s, want %s", pid, got, want)
			}
			return
		}
	}
	t.Errorf("pid %d: no NOFILE limit in:\n%s", pid, limits)
}

// The Go runtime raises udsvisor's own soft NOFILE limit to (nearly) the
// hard one; a service still starts with the soft limit udsvisor was
// given, as it would have without udsvisor in between. (A Go service
// raises its own again, so the service here is /bin/sleep.)
func TestFaultEMFILEChildKeepsSoftNofile(t *testing.T) {
	testutil.EnsureUser(t, "udsv-a")
	prlimit := testutil.RequireCommand(t, "prlimit")
	dir := testutil.RunDir(t)
	writeFaultConfig(t, dir, `
[supervisor]
control_socket = "$DIR/ctl/control.sock"

[services.sleeper]
command = ["/bin/sleep", "1000"]
user = "udsv-a"
`)
	e := startWrapped(t, dir, testutil.UpOptions{Wrap: []string{prlimit, "--nofile=64:4096"}})
	checkNofile(t, e.up.WaitSpawned(t, "sleeper").Int("pid"), "64 4096")
}

// A child that exits at once with restart = always and no start limit:
// the back-off (none after the first failure, then 100 ms doubling)
// allows at most 8 spawns in 5 s, and udsvisor stays nearly idle.
func TestFaultCrashLoopCPU(t *testing.T) {
	testutil.EnsureUser(t, "udsv-a")
	dir := testutil.RunDir(t)
	writeFaultConfig(t, dir, `
[supervisor]
control_socket = "$DIR/ctl/control.sock"

[services.crash]
command = ["/bin/false"]
user = "udsv-a"
restart = "always"
start_limit = 0
`)
	e := startWrapped(t, dir, testutil.UpOptions{})
	pid := e.up.Pid()
	cpu0 := cpuTime(t, pid)
	time.Sleep(5 * time.Second) // the window being measured, not a wait for an event
	svcs, err := e.services(t)
	if err != nil {
		t.Fatal(err)
	}
	spawns := svcs[0].Restarts + 1
	t.Logf("%d spawns in 5s, state %s, %d failures; udsvisor CPU %v", spawns, svcs[0].State, svcs[0].Failures, cpuTime(t, pid)-cpu0)
	if spawns > 8 {
		t.Errorf("%d spawns in 5s of a crash loop, want at most 8", spawns)
	}
	if svcs[0].LastExit == nil || svcs[0].LastExit.Code == nil || *svcs[0].LastExit.Code != 1 {
		t.Errorf("last exit %+v, want status 1", svcs[0].LastExit)
	}
	if err := e.up.Stop(t); err != nil {
		t.Errorf("udsvisor exited with %v, want status 0", err)
	}
}
