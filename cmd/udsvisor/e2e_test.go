// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"syscall"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// udsvisorBin is the real binary, built by TestMain, so that these tests
// exercise exactly what an operator runs, launch helper included; testApp
// is integration/testapp, the service the tests supervise.
var udsvisorBin, testApp string

func TestMain(m *testing.M) {
	os.Exit(testutil.RunBuilt(m, []string{
		"github.com/udsvisor/udsvisor/cmd/udsvisor",
		"github.com/udsvisor/udsvisor/integration/testapp",
	}, func(_ string, bins []string) error {
		udsvisorBin, testApp = bins[0], bins[1]
		return nil
	}))
}

// startUp runs `udsvisor up -c cfg` with extra fds inherited at 3...
func startUp(t *testing.T, cfg string, extra ...*os.File) *testutil.Up {
	t.Helper()
	return testutil.StartUp(t, udsvisorBin, cfg, testutil.UpOptions{ExtraFiles: extra})
}

func get(path string) (string, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	resp, err := client.Get("http://localhost/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// exampleConfig copies services.toml.example with its demo moved under
// dir and the demo command pointing at the freshly built binary.
func exampleConfig(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile("../../services.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer(
		`command = ["udsvisor", "demo"]`, fmt.Sprintf(`command = [%q, "demo"]`, udsvisorBin),
		"/run/udsvisor-demo/", dir+"/demo/",
		"/run/udsvisor/control.sock", dir+"/control.sock",
	).Replace(string(b))
	if !strings.Contains(text, dir+"/demo/hello.sock") || !strings.Contains(text, udsvisorBin) {
		t.Fatal("services.toml.example no longer has the demo this test expects")
	}
	path := filepath.Join(dir, "services.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The README's first command: up on services.toml.example serves the demo
// through a socket srw-rw---- nobody:www-data in a root:www-data 0750
// directory; SIGTERM stops it cleanly and removes both.
func TestUpServesTheExampleDemo(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.RunDir(t)
	p := startUp(t, exampleConfig(t, dir))
	sock := filepath.Join(dir, "demo", "hello.sock")
	body := getWhenUp(t, p, sock)
	if !strings.Contains(body, "Hello from the udsvisor demo") || !strings.Contains(body, "user nobody") {
		t.Errorf("demo answered %q", body)
	}
	checkOwner(t, sock, os.ModeSocket|0o660, "nobody", "www-data")
	checkOwner(t, filepath.Join(dir, "demo"), os.ModeDir|0o750, "root", "www-data")

	pid := demoPid(t, body)
	if err := p.Stop(t); err != nil {
		t.Errorf("udsvisor up exited with %v after SIGTERM, want status 0", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "demo")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket directory after shutdown: %v", err)
	}
	if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
		t.Errorf("demo pid %d after shutdown: %v", pid, err)
	}
}

// getWhenUp waits until udsvisor is up, then GETs / on sock: its socket
// is bound and listening by then, so the request waits in the backlog
// for the first process to accept it, with no retry.
func getWhenUp(t *testing.T, p *testutil.Up, sock string) string {
	t.Helper()
	p.WaitUp(t)
	body, err := get(sock)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func demoPid(t *testing.T, body string) int {
	t.Helper()
	var pid int
	if _, err := fmt.Sscanf(body, "Hello from the udsvisor demo: pid %d,", &pid); err != nil {
		t.Fatalf("no pid in %q: %v", body, err)
	}
	return pid
}

func checkOwner(t *testing.T, path string, mode os.FileMode, owner, group string) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	out, err := exec.Command("stat", "-c", "%U %G", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); fi.Mode() != mode || got != owner+" "+group {
		t.Errorf("%s: %v %s (uid %d gid %d), want %v %s %s", path, fi.Mode(), got, st.Uid, st.Gid, mode, owner, group)
	}
}

// check prints the plan and touches nothing; a broken config gives every
// error as file:line: key: message and exit status 1.
func TestCheck(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.RunDir(t)
	cfg := exampleConfig(t, dir)
	out, err := exec.Command(udsvisorBin, "check", "-c", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("check on the example: %v\n%s", err, out)
	}
	for _, want := range []string{"srw-rw----", "nobody", "www-data", dir + "/demo/hello.sock", "creates directory " + dir + "/demo"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "demo")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("check created something: %v", err)
	}

	// -q: nothing on stdout on success; warnings (the example runs as
	// the shared user nobody) on stderr, where proxy prints its own.
	var qout, qerr bytes.Buffer
	quiet := exec.Command(udsvisorBin, "check", "-q", "-c", cfg)
	quiet.Stdout, quiet.Stderr = &qout, &qerr
	if err := quiet.Run(); err != nil || qout.Len() != 0 || !strings.Contains(qerr.String(), "warning: ") {
		t.Errorf("check -q: %v, stdout %q, stderr %q; want success, nothing on stdout, the warnings on stderr", err, qout.String(), qerr.String())
	}

	// The plan says how a service starts and must report.
	notify := filepath.Join(dir, "notify.toml")
	os.WriteFile(notify, []byte(`[services.api]
command = ["/bin/true"]
user = "nobody"
ready = "notify"
watchdog = "30s"
start = "on-demand"
idle_stop = "10m"
instances = 3
restart_mode = "overlap"
[[services.api.sockets]]
path = "`+dir+`/ondemand/api.sock"
`), 0o644)
	out, err = exec.Command(udsvisorBin, "check", "-c", notify).CombinedOutput()
	for _, want := range []string{
		"  start     on demand: by the first connection; stopped after 10m0s without a connection\n",
		"  ready     notify: READY=1 within 1m30s; WATCHDOG=1 every 30s\n",
		"  instances 3 processes on the same sockets (UDSVISOR_INSTANCE=0..2)\n",
		"  restarts  overlap: the new processes start beside the old ones, which stop once the new have started\n",
	} {
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("check on a notify, on-demand service: %v; want %q in\n%s", err, want, out)
		}
	}

	broken := filepath.Join(dir, "broken.toml")
	os.WriteFile(broken, []byte(`[services.api]
command = ["/bin/true"]
user = "nobody"
colour = "blue"

[[services.api.sockets]]
path = "/run/x/api.sock"
mode = "0778"
`), 0o644)
	cmd := exec.Command(udsvisorBin, "check", "-c", broken)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("check on a broken config: %v, want exit status 1", err)
	}
	for _, want := range []string{
		broken + ":4: services.api.colour: ",
		broken + ":8: services.api.sockets[0].mode: ",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("errors lack %q:\n%s", want, stderr.String())
		}
	}
}

// fds that udsvisor inherits from whoever started it never reach a child
// (golang/go#37857): the child has 0, 1, 2 and its socket, nothing more.
func TestUpDoesNotLeakInheritedFDs(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.RunDir(t)
	cfg := filepath.Join(dir, "services.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
[supervisor]
control_socket = %q
[services.sleeper]
command = ["/bin/sleep", "1000"]
user = "nobody"
[[services.sleeper.sockets]]
path = %q
`, filepath.Join(dir, "control.sock"), filepath.Join(dir, "s.sock"))), 0o644)
	inherited, err := os.Open("/etc/hostname")
	if err != nil {
		t.Fatal(err)
	}
	defer inherited.Close()
	p := startUp(t, cfg, inherited, inherited)
	child := p.WaitSpawned(t, "sleeper").Int("pid")
	testutil.WaitNanosleep(t, child)
	fds, err := testutil.ProcFDs(child)
	if err != nil {
		t.Fatal(err)
	}
	if len(fds) != 4 || fds[0] != "/dev/null" || !strings.HasPrefix(fds[3], "socket:") {
		t.Errorf("child fds %v, want exactly 0=/dev/null, 1, 2 and 3=its socket", fds)
	}
}

// childOf returns the pid of a child of parent whose command is comm.
func childOf(parent int, comm string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := testutil.ProcStatus(pid)
		if err == nil && st["PPid"] == strconv.Itoa(parent) && st["Name"] == comm {
			return pid
		}
	}
	return 0
}

// udsvisor killed with SIGKILL takes its children with it, and a new up
// replaces the stale socket file it left behind and serves again.
func TestKill9OfUdsvisorThenUpAgain(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.RunDir(t)
	cfg := exampleConfig(t, dir)
	sock := filepath.Join(dir, "demo", "hello.sock")
	p := startUp(t, cfg)
	pid := demoPid(t, getWhenUp(t, p, sock))
	p.Kill()
	testutil.WaitGone(t, pid)
	// Its exit status comes once every thread has ended, and with the
	// last its fds: the service's process, killed when the launcher's
	// thread went, may be gone before the control socket is closed (as
	// systemd, a restart waits for the exit status).
	p.Wait(t)
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("a SIGKILLed udsvisor cannot remove its socket, yet: %v", err)
	}
	getWhenUp(t, startUp(t, cfg), sock)
}
