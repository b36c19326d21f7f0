// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

// Fault injection against the real binary (SECURITY-NOTES section 6):
// a full or read-only file system under a socket, a binary that vanished
// after the config was loaded, and signals that race the shutdown. The
// log flood and PID 1 are in faults_proc_e2e_test.go, EMFILE and the
// crash loop in faults_limits_e2e_test.go.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/internal/testutil"
)

// writeFaultConfig writes text with $DIR and $APP replaced to dir/services.toml.
func writeFaultConfig(t *testing.T, dir, text string) string {
	t.Helper()
	cfg := filepath.Join(dir, "services.toml")
	text = strings.NewReplacer("$DIR", dir, "$APP", testApp).Replace(text)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// runUpToExit runs `udsvisor up -c cfg`, which must exit by itself, and
// returns its exit code and stderr.
func runUpToExit(t *testing.T, cfg string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, udsvisorBin, "up", "-c", cfg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ee) && ctx.Err() == nil:
		return ee.ExitCode(), stderr.String()
	default:
		t.Fatalf("udsvisor up: %v\n%s", err, stderr.String())
		return 0, ""
	}
}

// mount runs mount(8) with args and unmounts target at cleanup.
func mount(t *testing.T, target string, args ...string) {
	t.Helper()
	testutil.RequireCommand(t, "mount")
	if out, err := exec.Command("mount", append(args, target)...).CombinedOutput(); err != nil {
		testutil.Unavailable(t, "mount %v %s: %v: %s", args, target, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", target).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", target, err, out)
			exec.Command("umount", "-l", target).Run()
		}
	})
}

// markerConfig is a config whose two services would each leave a file in
// $DIR/marker if they ever ran: "ok" has a socket that can be bound,
// "web" the socket at $SOCK that the test makes impossible.
const markerConfig = `
[supervisor]
control_socket = "$DIR/ctl/control.sock"

[services.ok]
command = ["/bin/sh", "-c", "touch $DIR/marker/ok; exec sleep 1000"]
user = "udsv-b"
[[services.ok.sockets]]
path = "$DIR/ok/ok.sock"

[services.web]
command = ["/bin/sh", "-c", "touch $DIR/marker/web; exec sleep 1000"]
user = "udsv-a"
[[services.web.sockets]]
path = "$SOCK"
`

// upMustFail runs up on markerConfig with the web socket at sock and
// checks that it exits 1 with an error naming path and cause, started
// nothing and left nothing behind in dir but what was there before.
func upMustFail(t *testing.T, dir, sock, path string, cause error) {
	t.Helper()
	testutil.EnsureUser(t, "udsv-b")
	u := testutil.EnsureUser(t, "udsv-a")
	marker := filepath.Join(dir, "marker")
	if err := os.Mkdir(marker, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(marker, int(u.UID), int(u.GID)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(marker, 0o777); err != nil { // udsv-b writes too
		t.Fatal(err)
	}
	before := tree(t, dir)
	cfg := writeFaultConfig(t, dir, strings.ReplaceAll(markerConfig, "$SOCK", sock))
	code, stderr := runUpToExit(t, cfg)
	want := fmt.Sprintf("%s: %s", path, cause)
	t.Logf("up exited %d:\n%s", code, stderr)
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("up exited %d, want 1 with %q in:\n%s", code, want, stderr)
	}
	if after := tree(t, dir); after != before {
		t.Errorf("up left files behind:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// tree lists every name under dir (but the config, which the test
// writes) with its type, one per line.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if filepath.Base(p) != "services.toml" {
			fmt.Fprintf(&b, "%s %v\n", p, fi.Mode().Type())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A socket on a full file system: the bind, or the mkdir of a missing
// directory, fails with ENOSPC. up exits 1 naming the path, removes the
// control socket, the other service's socket and every directory it made,
// and starts no service.
func TestFaultDiskFull(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tc := range []struct {
		name string
		free int    // inodes left free on the tmpfs
		fail string // the path whose creation fails, under the mount
	}{
		// x and y are created, then the socket finds no inode.
		{"bind", 2, "x/y/a.sock"},
		// x is created, y finds no inode.
		{"mkdir", 1, "x/y"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testutil.RunDir(t)
			full := filepath.Join(dir, "full")
			if err := os.Mkdir(full, 0o755); err != nil {
				t.Fatal(err)
			}
			// nr_inodes counts the root directory: 5 are free.
			mount(t, full, "-t", "tmpfs", "-o", "size=64k,nr_inodes=6,mode=0755", "tmpfs")
			for i := 0; ; i++ {
				err := os.WriteFile(filepath.Join(full, "fill"+strconv.Itoa(i)), nil, 0o600)
				if errors.Is(err, unix.ENOSPC) {
					break
				}
				if err != nil || i > 100 {
					t.Fatalf("filling the tmpfs: %v after %d files", err, i)
				}
			}
			for i := 0; i < tc.free; i++ {
				if err := os.Remove(filepath.Join(full, "fill"+strconv.Itoa(i))); err != nil {
					t.Fatal(err)
				}
			}
			upMustFail(t, dir, filepath.Join(full, "x/y/a.sock"), filepath.Join(full, tc.fail), unix.ENOSPC)
		})
	}
}

// A socket under a read-only mount: EROFS for the mkdir of a missing
// directory or for the bind, named with the path; exit 1, nothing
// started, nothing left.
func TestFaultReadOnlyRun(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tc := range []struct{ name, sock, fail string }{
		{"bind", "a.sock", "a.sock"},
		{"mkdir", "sub/a.sock", "sub"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testutil.RunDir(t)
			ro := filepath.Join(dir, "ro")
			if err := os.Mkdir(ro, 0o755); err != nil {
				t.Fatal(err)
			}
			mount(t, ro, "--bind", ro)
			if out, err := exec.Command("mount", "-o", "remount,bind,ro", ro).CombinedOutput(); err != nil {
				t.Fatalf("remount ro: %v: %s", err, out)
			}
			upMustFail(t, dir, filepath.Join(ro, tc.sock), filepath.Join(ro, tc.fail), unix.EROFS)
		})
	}
}

// spawnConfig runs web from a copy of the test app at $BIN and worker
// from the original.
const spawnConfig = `
[supervisor]
control_socket = "$DIR/ctl/control.sock"

[services.web]
command = ["$BIN"]
user = "udsv-a"
start_limit = 3
[[services.web.sockets]]
path = "$DIR/web/web.sock"

[services.worker]
command = ["$APP"]
user = "udsv-b"
[[services.worker.sockets]]
path = "$DIR/worker/worker.sock"
`

// The binary of a service is deleted after the config was loaded: its
// restart fails with an exec error naming the path, the service ends in
// failed with that error in last_error, and the other service keeps its
// process and keeps serving.
func TestFaultSpawnFailure(t *testing.T) {
	testutil.RequireRoot(t)
	bin := filepath.Join(testutil.RunDir(t), "testapp")
	testutil.CopyFile(t, testApp, bin, 0o755)
	e := startCtlEnv(t, strings.ReplaceAll(spawnConfig, "$BIN", bin))
	if _, err := get(filepath.Join(e.dir, "web", "web.sock")); err != nil {
		t.Fatal(err)
	}
	before := runningPids(t, e, "web", "worker")

	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := e.ctl("restart", "web")
	t.Logf("ctl restart web: %v: %s", err, stderr)
	if err == nil || !strings.Contains(stderr, bin) {
		t.Errorf("ctl restart of a deleted binary: %v: %s", err, stderr)
	}
	e.up.WaitState(t, "web", "failed")
	svcs, err := e.services(t)
	if err != nil {
		t.Fatal(err)
	}
	if w := svcs[0]; w.State != "failed" || w.Pid != 0 {
		t.Errorf("web is %s with pid %d, want failed", w.State, w.Pid)
	}
	if want := "exec " + bin + ": no such file or directory"; !strings.Contains(svcs[0].LastError, want) {
		t.Errorf("web last_error %q, want it to contain %q", svcs[0].LastError, want)
	}
	if w := svcs[1]; !isUp(w.State) || w.Pid != before[1].Pid {
		t.Errorf("worker is %s with pid %d, was %d: disturbed by web's failure", w.State, w.Pid, before[1].Pid)
	}
	if _, err := get(filepath.Join(e.dir, "worker", "worker.sock")); err != nil {
		t.Errorf("worker no longer serves: %v", err)
	}
}

// stopConfig has a service that ignores SIGTERM (killed after its
// stop_timeout), one that exits by itself every 50 ms and ignores SIGTERM
// too (so its exit races the stop), and a plain one.
const stopConfig = `
[supervisor]
control_socket = "$DIR/ctl/control.sock"

[services.stubborn]
command = ["$APP", "-ignore-term"]
user = "udsv-a"
stop_timeout = "1s"
[[services.stubborn.sockets]]
path = "$DIR/stubborn/stubborn.sock"

[services.flapper]
command = ["/bin/sh", "-c", "trap '' TERM; exec sleep 0.05"]
user = "udsv-b"
min_uptime = "10ms"
start_limit = 0

[services.web]
command = ["$APP"]
user = "udsv-a"
[[services.web.sockets]]
path = "$DIR/web/web.sock"
`

// SIGHUP right after SIGTERM, and again and again while the services stop,
// is ignored: the shutdown completes (the TERM-ignoring service is killed
// after its stop_timeout), udsvisor exits 0, no process of the services
// is left and the sockets are removed.
func TestFaultHUPWhileStopping(t *testing.T) {
	e := startCtlEnv(t, stopConfig)
	svcs := runningPids(t, e, "stubborn", "web")
	web := svcs[2]
	p := e.up
	if err := p.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.Signal(unix.SIGHUP)
	// web ends on SIGTERM, so once udsvisor has reaped it the shutdown
	// is under way; stubborn keeps it going for its stop_timeout.
	p.WaitExit(t, "web", web.Pid)
	hups := make(chan struct{})
	go func() {
		defer close(hups)
		for p.Signal(unix.SIGHUP) == nil {
			time.Sleep(20 * time.Millisecond)
		}
	}()
	if err := e.up.Stop(t); err != nil {
		t.Errorf("udsvisor up exited with %v, want status 0", err)
	}
	<-hups
	for _, s := range svcs {
		if s.Pid != 0 {
			if err := unix.Kill(s.Pid, 0); !errors.Is(err, unix.ESRCH) {
				t.Errorf("%s: pid %d left after shutdown: %v", s.Name, s.Pid, err)
			}
		}
	}
	for _, d := range []string{"stubborn", "web", "ctl"} {
		if _, err := os.Lstat(filepath.Join(e.dir, d)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after shutdown: %v", d, err)
		}
	}
	// Whether the first SIGHUP is seen before the SIGTERM is up to the
	// kernel, which delivers the lower signal number first; none may
	// start a reload once the shutdown has begun.
	log := e.up.Log()
	if i := strings.Index(log, "shutting down"); i < 0 || strings.Contains(log[i:], "reloading") {
		t.Errorf("a SIGHUP during shutdown started a reload:\n%s", log)
	}
}

// runningPids returns every service's status, in which the named
// services must have a process: startCtlEnv waited until udsvisor was
// up, so each has been started once.
func runningPids(t *testing.T, e *ctlEnv, names ...string) []api.Service {
	t.Helper()
	svcs, err := e.services(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs {
		if slices.Contains(names, s.Name) && s.Pid == 0 {
			t.Fatalf("%s is %s with no process once udsvisor is up", s.Name, s.State)
		}
	}
	return svcs
}

// A process that ends by itself while udsvisor stops it (the stop signal
// ignored, the exit natural) never upsets the service: over many stop,
// start and restart requests racing its exits, every request is answered,
// no internal error is logged, and the final stop leaves no process.
func TestFaultExitRacesStop(t *testing.T) {
	e := startCtlEnv(t, stopConfig)
	for i := 0; i < 30; i++ {
		op := []string{"stop", "start", "restart"}[i%3]
		if _, stderr, err := e.ctl(op, "flapper"); err != nil {
			t.Errorf("ctl %s flapper: %v: %s", op, err, stderr)
		}
	}
	if _, stderr, err := e.ctl("stop", "flapper"); err != nil {
		t.Fatalf("ctl stop flapper: %v: %s", err, stderr)
	}
	svcs, err := e.services(t)
	if err != nil {
		t.Fatal(err)
	}
	flapper := svcs[0]
	if flapper.Name != "flapper" || flapper.State != "stopped" || flapper.Pid != 0 {
		t.Errorf("after stop: %+v", flapper)
	}
	if err := e.up.Stop(t); err != nil {
		t.Errorf("udsvisor up exited with %v, want status 0", err)
	}
	if log := e.up.Log(); strings.Contains(log, "internal error") || strings.Contains(log, "panic") {
		t.Errorf("udsvisor logged an internal error:\n%s", log)
	}
}
