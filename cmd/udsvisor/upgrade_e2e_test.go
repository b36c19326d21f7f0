// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/client"
	"github.com/udsvisor/udsvisor/internal/testutil"
)

// upgradeConfig has a service of every kind an upgrade hands over: two
// instances, one that speaks sd_notify with a watchdog and a STATUS= text
// that looks like JSON (T24: it must stay text), a paused one, one that
// waits for its first connection and one that runs over TCP.
const upgradeConfig = `
[supervisor]
control_socket = "$DIR/ctl/control.sock"

[services.web]
command = ["$APP", "-hello", "web says hi"]
user = "udsv-a"
instances = 2
[[services.web.sockets]]
path = "$DIR/web/web.sock"

[services.notif]
command = ["$APP", "-notify", "READY=1\nSTATUS=ok\"},\"pid\":1,\"x\":{\"", "-watchdog-keepalive"]
user = "udsv-b"
ready = "notify"
watchdog = "1s"
[[services.notif.sockets]]
path = "$DIR/notif/notif.sock"

[services.held]
command = ["$APP"]
user = "udsv-b"
[[services.held.sockets]]
path = "$DIR/held/held.sock"

[services.lazy]
command = ["$APP"]
user = "udsv-b"
start = "on-demand"
[[services.lazy.sockets]]
path = "$DIR/lazy/lazy.sock"

# A line of 20,000 bytes that are not UTF-8: kept for ctl logs, it must
# pass through the hand-over (JSON would have made it longer).
[services.binary]
command = ["/bin/sh", "-c", 'head -c 20000 /dev/zero | tr "\000" "\377"; echo; exec sleep 100000']
user = "udsv-b"
`

// upgradeEnv is a udsvisor up of upgradeConfig started from a copy of
// the binary that the test may replace.
type upgradeEnv struct {
	*ctlEnv
	bin string // the binary udsvisor runs from, and re-executes
}

func startUpgradeEnv(t *testing.T) *upgradeEnv {
	t.Helper()
	testutil.EnsureUser(t, "udsv-a")
	testutil.EnsureUser(t, "udsv-b")
	e := &upgradeEnv{ctlEnv: &ctlEnv{dir: testutil.RunDir(t)}}
	e.bin = filepath.Join(e.dir, "udsvisor")
	testutil.CopyFile(t, udsvisorBin, e.bin, 0o755)
	e.cfg = filepath.Join(e.dir, "services.toml")
	e.sock = filepath.Join(e.dir, "ctl", "control.sock")
	e.write(t, upgradeConfig)
	e.up = testutil.StartUp(t, e.bin, e.cfg, testutil.UpOptions{})
	e.up.WaitUp(t)
	e.up.WaitState(t, "notif", "running")
	if _, stderr, err := e.ctl("pause", "held"); err != nil {
		t.Fatalf("ctl pause: %v: %s", err, stderr)
	}
	e.waitRunning(t, "web")
	testutil.Eventually(t, 10*time.Second, func() error {
		if logs, _, _ := e.ctl("logs", "binary"); len(logs) < 16<<10 {
			return fmt.Errorf("ctl logs binary: %d bytes", len(logs))
		}
		return nil
	})
	return e
}

// waitRunning waits until every process of the service has started, so
// that no state changes by itself meanwhile.
func (e *upgradeEnv) waitRunning(t *testing.T, name string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		for _, p := range e.service(t, name).Processes {
			if p.State != "running" {
				return fmt.Errorf("%s#%d is %s", name, p.Instance, p.State)
			}
		}
		return nil
	})
}

// replace puts a new file at the binary's path, as a package manager
// does: written beside it, then renamed over it.
func (e *upgradeEnv) replace(t *testing.T, content []byte, mode os.FileMode) {
	t.Helper()
	tmp := e.bin + ".new"
	if err := os.WriteFile(tmp, content, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, e.bin); err != nil {
		t.Fatal(err)
	}
}

// snapshot is what must not change across an upgrade: every process and
// every socket file (inode and birth time, SECURITY-NOTES 0.13).
type snapshot struct {
	pids    map[string][]int
	sockets map[string]string
	status  map[string]string // STATUS= texts
	states  map[string]string
}

func (e *upgradeEnv) snapshot(t *testing.T) snapshot {
	t.Helper()
	svcs, err := e.services(t)
	if err != nil {
		t.Fatal(err)
	}
	s := snapshot{pids: map[string][]int{}, sockets: map[string]string{}, status: map[string]string{}, states: map[string]string{}}
	for _, svc := range svcs {
		s.pids[svc.Name] = svc.Pids
		s.status[svc.Name] = svc.StatusText
		s.states[svc.Name] = svc.State
	}
	for _, name := range []string{"web/web.sock", "notif/notif.sock", "held/held.sock", "lazy/lazy.sock", "ctl/control.sock"} {
		s.sockets[name] = testutil.Birth(t, filepath.Join(e.dir, name))
	}
	return s
}

func (s snapshot) String() string {
	return fmt.Sprintf("pids %v states %v sockets %v status %q", s.pids, s.states, s.sockets, s.status)
}

// load sends requests to the sockets until stop, counting the failed.
func load(t *testing.T, socks ...string) (stop func() (ok, failed int64)) {
	var okN, failedN atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	var firstErr atomic.Value
	for _, sock := range socks {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-done:
						return
					default:
					}
					if _, err := get(sock); err != nil {
						failedN.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					} else {
						okN.Add(1)
					}
				}
			}()
		}
	}
	return func() (int64, int64) {
		close(done)
		wg.Wait()
		if e := firstErr.Load(); e != nil {
			t.Logf("first failed request: %v", e)
		}
		return okN.Load(), failedN.Load()
	}
}

// ctl upgrade (and SIGUSR2) under load: the same processes and socket
// files before and after, no failed request, and the new binary goes on
// supervising: a killed process is restarted, its output logged, the
// watchdog kept, a paused service stays paused and an on-demand one
// starts on its first connection. No child holds an fd of the hand-over
// (T24).
func TestUpgradeUnderLoad(t *testing.T) {
	e := startUpgradeEnv(t)
	web, notif := filepath.Join(e.dir, "web/web.sock"), filepath.Join(e.dir, "notif/notif.sock")
	// A process started just before the upgrade: its fds are checked.
	if _, stderr, err := e.ctl("restart", "web"); err != nil {
		t.Fatalf("ctl restart: %v: %s", err, stderr)
	}
	e.waitRunning(t, "web")
	before := e.snapshot(t)
	if want := `ok"},"pid":1,"x":{"`; before.status["notif"] != want {
		t.Fatalf("STATUS= of notif is %q, want %q", before.status["notif"], want)
	}
	stop := load(t, web, notif)
	time.Sleep(300 * time.Millisecond)
	out, stderr, err := e.ctl("upgrade")
	if err != nil {
		t.Fatalf("ctl upgrade: %v: %s%s", err, out, stderr)
	}
	if !strings.Contains(out, fmt.Sprintf("upgraded in place: pid %d", e.up.Pid())) {
		t.Errorf("ctl upgrade printed %q", out)
	}
	// The second one by signal, as an init script would.
	if err := e.up.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	takeOvers := 0
	e.up.WaitLog(t, "a second take-over", func(en testutil.Entry) bool {
		if en.Msg == "upgrade: took over" {
			takeOvers++
		}
		return takeOvers == 2
	})
	time.Sleep(300 * time.Millisecond)
	ok, failed := stop()
	if failed != 0 || ok == 0 {
		t.Errorf("under load across two upgrades: %d requests served, %d failed", ok, failed)
	}
	after := e.snapshot(t)
	if after.String() != before.String() {
		t.Errorf("the upgrades changed what runs:\nbefore %v\nafter  %v", before, after)
	}
	st, err := client.New(e.sock).UpgradeStatus(t.Context())
	if err != nil || st.Upgrades != 2 || st.Pid != e.up.Pid() || st.LastError != "" {
		t.Errorf("GET /v1/upgrade: %+v, %v; want 2 upgrades of pid %d", st, err, e.up.Pid())
	}
	e.checkChildFDs(t)

	// The watchdog (1 s) was fed across the upgrades and still is.
	time.Sleep(1500 * time.Millisecond)
	if svc := e.service(t, "notif"); !slices.Equal(svc.Pids, before.pids["notif"]) {
		t.Errorf("notif after 1.5 s more: pids %v, want %v (watchdog)", svc.Pids, before.pids["notif"])
	}
	// A paused service stays paused; a waiting one starts on demand.
	if svc := e.service(t, "held"); svc.State != "paused" {
		t.Errorf("held is %s after the upgrade, want paused", svc.State)
	}
	if _, err := get(filepath.Join(e.dir, "lazy/lazy.sock")); err != nil {
		t.Errorf("the first request to the on-demand service: %v", err)
	}
	// The new binary supervises: a killed process comes back, and what
	// it prints reaches ctl logs.
	victim := before.pids["web"][0]
	syscall.Kill(victim, syscall.SIGKILL)
	e.up.WaitExit(t, "web", victim)
	testutil.Eventually(t, 10*time.Second, func() error {
		svc := e.service(t, "web")
		if len(svc.Pids) != 2 || slices.Contains(svc.Pids, victim) {
			return fmt.Errorf("web pids %v", svc.Pids)
		}
		// The lines from before the upgrades were handed over too.
		logs, _, _ := e.ctl("logs", "web", "-n", "0")
		for _, pid := range append(before.pids["web"], svc.Processes[0].Pid) {
			if !strings.Contains(logs, fmt.Sprintf("[%d] stdout: web says hi", pid)) {
				return fmt.Errorf("no line of pid %d in ctl logs web: %q", pid, logs)
			}
		}
		return nil
	})
}

// checkChildFDs fails if a service process holds an fd of the hand-over
// (its state, a binary, a pipe or socket of another process).
func (e *upgradeEnv) checkChildFDs(t *testing.T) {
	t.Helper()
	svcs, err := e.services(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range svcs {
		for _, pid := range svc.Pids {
			fds, err := testutil.ProcFDs(pid)
			if err != nil {
				t.Fatal(err)
			}
			for fd, target := range fds {
				if strings.Contains(target, "udsvisor-handover") || strings.Contains(target, e.bin) || (fd > 3 && strings.HasPrefix(target, "pipe:")) {
					t.Errorf("%s pid %d has fd %d -> %s", svc.Name, pid, fd, target)
				}
			}
		}
	}
}

func (e *upgradeEnv) service(t *testing.T, name string) api.Service {
	t.Helper()
	svcs, err := e.services(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range svcs {
		if svc.Name == name {
			return svc
		}
	}
	t.Fatalf("no service %s", name)
	return api.Service{}
}

// A new binary that cannot take over leaves every service as it was and
// ctl upgrade exits 1 saying why: one that does not start, one that is
// not a program, one that others could have written, and one that starts
// but refuses the state after the exec, which then goes back to the old
// binary.
func TestUpgradeRefused(t *testing.T) {
	e := startUpgradeEnv(t)
	good, err := os.ReadFile(e.bin)
	if err != nil {
		t.Fatal(err)
	}
	goBackScript := "#!/bin/sh\n" +
		"if [ \"$1\" = " + upgradeCheckArg + " ]; then exec " + udsvisorBin + " \"$@\"; fi\n" +
		"base=${" + "UDSVISOR_EXEC_FDS%%:*}\n" +
		refusedEnv + "=\"refused by the test\" exec /proc/self/fd/$base \"$@\"\n"
	for _, tc := range []struct {
		name    string
		content []byte
		mode    os.FileMode
		want    string
	}{
		{"exits 1", []byte("#!/bin/sh\necho no way >&2\nexit 1\n"), 0o755, "exited with status 1: no way"},
		{"not a program", []byte("garbage"), 0o755, "exec format error"},
		{"writable by others", good, 0o757, "writable by group or others"},
		{"refuses after the exec", []byte(goBackScript), 0o755, "the new binary refused to take over: refused by the test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.snapshot(t)
			stop := load(t, filepath.Join(e.dir, "web/web.sock"))
			e.replace(t, tc.content, tc.mode)
			out, stderr, err := e.ctl("upgrade")
			e.replace(t, good, 0o755)
			ok, failed := stop()
			if err == nil || !strings.Contains(stderr, tc.want) {
				t.Errorf("ctl upgrade: %v, printed %q %q; want a failure saying %q", err, out, stderr, tc.want)
			}
			if failed != 0 || ok == 0 {
				t.Errorf("%d requests served, %d failed", ok, failed)
			}
			if after := e.snapshot(t); after.String() != before.String() {
				t.Errorf("a refused upgrade changed what runs:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
	// And the good binary still takes over afterwards.
	if out, stderr, err := e.ctl("upgrade"); err != nil {
		t.Fatalf("ctl upgrade with the good binary: %v: %s%s", err, out, stderr)
	}
}

// A storm of SIGUSR2 and SIGHUP (upgrades and reloads, many while an
// upgrade is under way or its exec in flight) ends nothing: udsvisor
// and every process are still there, and it still answers.
func TestUpgradeSignalStorm(t *testing.T) {
	e := startUpgradeEnv(t)
	before := e.snapshot(t)
	for i := range 200 {
		sig := syscall.SIGUSR2
		if i%4 == 3 {
			sig = syscall.SIGHUP
		}
		if err := e.up.Signal(sig); err != nil {
			t.Fatalf("signal %d: udsvisor is gone: %v", i, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The last upgrade may still be under way: ctl waits for it.
	testutil.Eventually(t, 10*time.Second, func() error {
		after := e.snapshot(t)
		if after.String() != before.String() {
			return fmt.Errorf("after the storm:\nbefore %v\nafter  %v", before, after)
		}
		return nil
	})
	if !strings.Contains(e.up.Log(), "upgrade: took over") {
		t.Error("no upgrade took place during the storm")
	}
}

// An operator who edits the config, then sends SIGHUP and SIGUSR2 gets
// both, in that order: the reload, then the upgrade, which would refuse
// a config file the running udsvisor had not loaded. (The kernel hands a
// pending SIGHUP over before a pending SIGUSR2, so the upgrade waits for
// the reload; the race it would otherwise run is too narrow for this test
// to hit reliably, which checks the outcome.)
func TestReloadThenUpgradeSignals(t *testing.T) {
	e := startUpgradeEnv(t)
	before := e.snapshot(t)
	e.write(t, upgradeConfig+"\n# edited: the file is no longer the running config until reloaded\n")
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR2} {
		if err := e.up.Signal(sig); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		if !strings.Contains(e.up.Log(), "upgrade: took over") {
			return errors.New("no upgrade took over yet")
		}
		return nil
	})
	if log := e.up.Log(); strings.Contains(log, "upgrade failed") || strings.Contains(log, "reload refused") {
		t.Errorf("the reload or the upgrade failed:\n%s", log)
	}
	if after := e.snapshot(t); after.String() != before.String() {
		t.Errorf("processes changed:\nbefore %v\nafter  %v", before, after)
	}
}
