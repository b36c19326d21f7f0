// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

const crashConfig = `
[services.crash]
command = ["$APP", "-exit", "%d"]
user = "udsv-a"
restart = "%s"
start_limit = 4
`

// A service that dies at once is restarted with growing pauses and ends
// in failed after start_limit consecutive failures, instead of spinning.
func TestCrashLoopEndsInFailed(t *testing.T) {
	users(t)
	h := start(t, fmt.Sprintf(crashConfig, 1, "always"))
	st := h.waitState("crash", Failed)
	if st.Failures != 4 || st.Restarts != 3 {
		t.Errorf("failures %d, restarts %d; want 4 and 3", st.Failures, st.Restarts)
	}
	if st.LastExit == nil || st.LastExit.String() != "exited with status 1" {
		t.Errorf("last exit %v", st.LastExit)
	}
	// Failed stays failed: no new process appears.
	h.quiet(300 * time.Millisecond)
	if st2 := h.status("crash"); st2.State != Failed || st2.Restarts != st.Restarts {
		t.Errorf("after failed: %s with %d restarts", st2.State, st2.Restarts)
	}
	// An operator's start forgets the failures and tries again.
	if err := h.sup.Start(context.Background(), "crash"); err != nil {
		t.Fatal(err)
	}
	if st3 := h.waitState("crash", Failed); st3.Restarts != 7 {
		t.Errorf("after a new start: restarts %d, want 7", st3.Restarts)
	}
}

func TestBackoffDelays(t *testing.T) {
	want := []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}
	for n, d := range want {
		if got := backoffDelay(n); got != d {
			t.Errorf("backoffDelay(%d) = %v, want %v", n, got, d)
		}
	}
	if got := backoffDelay(50); got != 30*time.Second {
		t.Errorf("backoffDelay(50) = %v, want the 30s cap", got)
	}
}

func TestRestartPolicies(t *testing.T) {
	users(t)
	for _, c := range []struct {
		restart string
		code    int
		want    State
	}{
		{"never", 1, Exited},
		{"never", 0, Exited},
		{"on-failure", 0, Exited},
		{"on-failure", 3, Failed},
		{"always", 0, Failed},
	} {
		t.Run(fmt.Sprintf("%s/exit%d", c.restart, c.code), func(t *testing.T) {
			h := start(t, fmt.Sprintf(crashConfig, c.code, c.restart))
			st := h.waitState("crash", c.want)
			wantRestarts := 0
			if c.want == Failed {
				wantRestarts = 3
			}
			if st.Restarts != wantRestarts {
				t.Errorf("restarts %d, want %d", st.Restarts, wantRestarts)
			}
		})
	}
}

// A child that ignores the stop signal is SIGKILLed after stop_timeout,
// together with the grandchild it left in its process group.
func TestStopKillsTermIgnoringGroup(t *testing.T) {
	users(t)
	h := start(t, `
[services.stubborn]
command = ["$APP", "-ignore-term", "-grandchild"]
user = "udsv-a"
stop_timeout = "300ms"
[[services.stubborn.sockets]]
path = "$DIR/s.sock"
`)
	rep, err := getReport(filepath.Join(h.dir, "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Grandchild == 0 || !alive(rep.Grandchild) {
		t.Fatalf("no grandchild running: %+v", rep)
	}
	if err := h.sup.Stop(context.Background(), "stubborn"); err != nil {
		t.Fatal(err)
	}
	st := h.status("stubborn")
	if st.State != Stopped || st.LastExit == nil || st.LastExit.String() != "killed by SIGKILL" {
		t.Errorf("after stop: %s, last exit %v", st.State, st.LastExit)
	}
	waitGone(t, 5*time.Second, rep.Pid, rep.Grandchild)
}

// Shutdown stops every service, leaves no process of theirs alive and
// removes the socket files and the directories udsvisor created.
func TestShutdownRemovesSocketsAndProcesses(t *testing.T) {
	users(t)
	h := start(t, appConfig)
	rep, err := getReport(filepath.Join(h.dir, "app", "http.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if alive(rep.Pid) {
		t.Errorf("pid %d alive after shutdown", rep.Pid)
	}
	if _, err := os.Lstat(filepath.Join(h.dir, "app")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket directory after shutdown: %v", err)
	}
	if _, err := os.Lstat(h.dir); err != nil {
		t.Errorf("the pre-existing directory is gone: %v", err)
	}
}

// If one socket cannot be bound, nothing starts and the sockets already
// bound are removed again; a file in the way is left intact.
func TestBindFailureStartsNothing(t *testing.T) {
	users(t)
	dir := testutil.RunDir(t)
	cfg := parse(t, expand(`
[services.a]
command = ["$APP", "-hello", "must-not-start"]
user = "udsv-a"
[[services.a.sockets]]
path = "$DIR/a/a.sock"

[services.z]
command = ["$APP"]
user = "udsv-a"
[[services.z.sockets]]
path = "$DIR/z.sock"
`, dir))
	// Created after the config was loaded, which would have refused it:
	// the socket layer must refuse it too.
	blocker := filepath.Join(dir, "z.sock")
	if err := os.WriteFile(blocker, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	err := New(cfg, newLogger(logs), Options{}).Run(context.Background(), func() { t.Error("services were started") })
	if err == nil || !strings.Contains(err.Error(), "z.sock") || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Run: %v", err)
	}
	if b, _ := os.ReadFile(blocker); string(b) != "precious" {
		t.Errorf("the regular file was changed: %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the first service's socket directory remains: %v", err)
	}
	if strings.Contains(logs.String(), "must-not-start") {
		t.Error("the first service ran")
	}
}

// A stale socket (nobody accepts on it) is replaced; a live one is
// refused and left alone.
func TestStaleSocketReplacedLiveRefused(t *testing.T) {
	users(t)
	dir := testutil.RunDir(t)
	path := filepath.Join(dir, "app.sock")
	text := `
[services.app]
command = ["$APP"]
user = "udsv-a"
[[services.app.sockets]]
path = "$DIR/app.sock"
`
	live, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	err = New(parse(t, expand(text, dir)), newLogger(&syncBuffer{}), Options{}).Run(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "another process is listening") {
		t.Errorf("Run over a live socket: %v", err)
	}
	if c, err := net.Dial("unix", path); err != nil {
		t.Errorf("the live socket was disturbed: %v", err)
	} else {
		c.Close()
	}
	// Closing without unlinking leaves a stale socket file behind.
	live.SetUnlinkOnClose(false)
	live.Close()
	var before unix.Stat_t
	if err := unix.Lstat(path, &before); err != nil {
		t.Fatal(err)
	}

	startIn(t, dir, text)
	if _, err := getReport(path); err != nil {
		t.Errorf("request through the replaced socket: %v", err)
	}
}

// Restart replaces the process; the socket stays the same.
func TestRestartStartsANewProcess(t *testing.T) {
	users(t)
	h := start(t, appConfig)
	first := h.waitState("app", Starting).Pid
	if err := h.sup.Restart(context.Background(), "app"); err != nil {
		t.Fatal(err)
	}
	// Restart returns once the new process runs the command.
	if st := h.status("app"); st.Pid == 0 || st.Pid == first || st.Restarts != 1 {
		t.Errorf("after restart: %s pid %d restarts %d (first pid %d)", st.State, st.Pid, st.Restarts, first)
	}
	if alive(first) {
		t.Errorf("the first process %d is still alive", first)
	}
}

// A socket name that was unlinked (an app that removes its socket when it
// exits, or an operator's rm) is linked again to the same listening
// socket when the process exits, before the restart.
func TestUnlinkedSocketNameIsRestored(t *testing.T) {
	users(t)
	h := start(t, appConfig)
	sock := filepath.Join(h.dir, "app", "http.sock")
	rep, err := getReport(sock)
	if err != nil {
		t.Fatal(err)
	}
	ino, btime := statxIdentity(t, sock)
	if err := os.Remove(sock); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(rep.Pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The name is restored when the exit is handled, before the next
	// process is launched.
	h.waitFor("app", "a new process", func(st Status) bool { return st.Pid != 0 && st.Pid != rep.Pid })
	if _, err := getReport(sock); err != nil {
		t.Fatal(err)
	}
	if ino2, btime2 := statxIdentity(t, sock); ino2 != ino || btime2 != btime {
		t.Error("the restored name is a new socket, not the one udsvisor kept listening")
	}
}
