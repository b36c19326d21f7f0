// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/internal/testutil"
)

// ctlConfig has two services of the test app and a control socket that
// udsv-ctl may drive and udsv-ro may read.
const ctlConfig = `
[supervisor]
control_socket = "$DIR/ctl/control.sock"
control_group = "udsv-ctl"
status_group = "udsv-ro"

[services.web]
command = ["$APP", "-hello", "web says hi"]
user = "udsv-a"
[[services.web.sockets]]
path = "$DIR/web/web.sock"

[services.worker]
command = ["$APP"]
user = "udsv-b"
[[services.worker.sockets]]
path = "$DIR/worker/worker.sock"
`

// ctlEnv is a running udsvisor up with ctlConfig.
type ctlEnv struct {
	dir, cfg, sock string
	up             *testutil.Up
}

func startCtlEnv(t *testing.T, text string) *ctlEnv {
	t.Helper()
	testutil.EnsureGroup(t, "udsv-ctl")
	testutil.EnsureGroup(t, "udsv-ro")
	testutil.EnsureUser(t, "udsv-a")
	testutil.EnsureUser(t, "udsv-b")
	e := &ctlEnv{dir: testutil.RunDir(t)}
	e.cfg = filepath.Join(e.dir, "services.toml")
	e.sock = filepath.Join(e.dir, "ctl", "control.sock")
	e.write(t, text)
	e.up = startUp(t, e.cfg)
	// The API answers while services are still starting (several at
	// once); once udsvisor is up, each first start has been answered
	// and its process is in the status.
	e.up.WaitUp(t)
	return e
}

func (e *ctlEnv) write(t *testing.T, text string) {
	t.Helper()
	text = strings.NewReplacer("$DIR", e.dir, "$APP", testApp).Replace(text)
	if err := os.WriteFile(e.cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ctl runs `udsvisor ctl -s SOCK args...` as root.
func (e *ctlEnv) ctl(args ...string) (string, string, error) {
	return e.ctlAs(nil, args...)
}

// ctlAs runs ctl with the given credentials (nil: root).
func (e *ctlEnv) ctlAs(cred *syscall.Credential, args ...string) (string, string, error) {
	cmd := exec.Command(udsvisorBin, append([]string{"ctl", "-s", e.sock}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func (e *ctlEnv) services(t *testing.T) ([]api.Service, error) {
	out, stderr, err := e.ctl("status", "--json")
	if err != nil {
		return nil, fmt.Errorf("ctl status --json: %v: %s", err, stderr)
	}
	var svcs []api.Service
	if err := json.Unmarshal([]byte(out), &svcs); err != nil {
		return nil, fmt.Errorf("ctl status --json printed %q: %v", out, err)
	}
	return svcs, nil
}

// ctl status --json reports the real pids: each is a live child of
// udsvisor running as the service's user.
func TestCtlStatusMatchesProc(t *testing.T) {
	e := startCtlEnv(t, ctlConfig)
	svcs, err := e.services(t)
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 2 || svcs[0].Name != "web" || svcs[1].Name != "worker" {
		t.Fatalf("services %+v", svcs)
	}
	for _, s := range svcs {
		ps, err := testutil.ProcStatus(s.Pid)
		if err != nil {
			t.Fatalf("%s: pid %d: %v", s.Name, s.Pid, err)
		}
		u := testutil.EnsureUser(t, map[string]string{"web": "udsv-a", "worker": "udsv-b"}[s.Name])
		if ps["PPid"] != strconv.Itoa(e.up.Pid()) || !strings.HasPrefix(ps["Uid"], strconv.Itoa(int(u.UID))+"\t") {
			t.Errorf("%s: pid %d has PPid %s Uid %s", s.Name, s.Pid, ps["PPid"], ps["Uid"])
		}
		if len(s.Sockets) != 1 || s.Sockets[0].FD != 3 || s.Sockets[0].Mode != "0660" {
			t.Errorf("%s: sockets %+v", s.Name, s.Sockets)
		}
	}
	out, _, err := e.ctl("status")
	if err != nil || !strings.Contains(out, "web") || !strings.Contains(out, strconv.Itoa(svcs[0].Pid)) {
		t.Errorf("ctl status: %v\n%s", err, out)
	}
	// A named service that is not running makes status exit 3.
	if _, _, err := e.ctl("stop", "worker"); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.ctl("status", "worker")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("ctl status of a stopped service: %v, want exit status 3", err)
	}
}

// ctl restart gives a new process on the very same socket.
func TestCtlRestartKeepsTheSocket(t *testing.T) {
	e := startCtlEnv(t, ctlConfig)
	sock := filepath.Join(e.dir, "web", "web.sock")
	before := testutil.Birth(t, sock)
	svcs, _ := e.services(t)
	if _, stderr, err := e.ctl("restart", "web"); err != nil {
		t.Fatalf("ctl restart: %v: %s", err, stderr)
	}
	after, _ := e.services(t)
	if after[0].Pid == 0 || after[0].Pid == svcs[0].Pid || after[0].Restarts != 1 {
		t.Errorf("after restart: pid %d (before %d), restarts %d", after[0].Pid, svcs[0].Pid, after[0].Restarts)
	}
	if testutil.Birth(t, sock) != before {
		t.Error("ctl restart re-created the socket")
	}
	if after[1].Pid != svcs[1].Pid {
		t.Error("ctl restart web touched worker")
	}
}

// ctl logs returns the lines the child printed.
func TestCtlLogs(t *testing.T) {
	e := startCtlEnv(t, ctlConfig)
	// udsvisor logs each line of a child's as it keeps it for ctl logs
	// (just before, so in a rare race the line is not kept yet).
	e.up.WaitLog(t, `web's line "web says hi"`, func(l testutil.Entry) bool {
		return l.Str("service") == "web" && l.Msg == "web says hi"
	})
	out, stderr, err := e.ctl("logs", "web", "-n", "10")
	if err != nil || !strings.Contains(out, "web says hi") {
		t.Errorf("ctl logs: %v %s\n%s", err, stderr, out)
	}
}

// Only root and control_group may act; status_group may read; others are
// refused by the file mode and, with the mode loosened, by the peer
// credential check.
func TestCtlAuthorisation(t *testing.T) {
	e := startCtlEnv(t, ctlConfig)
	outsider := testutil.EnsureUser(t, "udsv-b")
	reader := testutil.EnsureUser(t, "udsv-reader", "udsv-ro")
	operator := testutil.EnsureUser(t, "udsv-op", "udsv-ctl")
	cred := func(u testutil.User, groups ...string) *syscall.Credential {
		c := &syscall.Credential{Uid: u.UID, Gid: u.GID}
		for _, g := range groups {
			c.Groups = append(c.Groups, testutil.EnsureGroup(t, g))
		}
		return c
	}

	_, stderr, err := e.ctlAs(cred(outsider), "status")
	if err == nil || !strings.Contains(stderr, "permission denied") {
		t.Errorf("outsider with mode 0660: %v %s", err, stderr)
	}
	if err := os.Chmod(e.sock, 0o666); err != nil {
		t.Fatal(err)
	}
	_, stderr, err = e.ctlAs(cred(outsider), "status")
	if err == nil || !strings.Contains(stderr, "403") && !strings.Contains(stderr, "permission denied") {
		t.Errorf("outsider with mode 0666: %v %s", err, stderr)
	}
	if _, stderr, err := e.ctlAs(cred(outsider), "restart", "web"); err == nil {
		t.Errorf("outsider restarted a service: %s", stderr)
	}

	if out, stderr, err := e.ctlAs(cred(reader, "udsv-ro"), "status"); err != nil || !strings.Contains(out, "web") {
		t.Errorf("status_group member reading: %v %s %s", err, out, stderr)
	}
	before, _ := e.services(t)
	if _, stderr, err := e.ctlAs(cred(reader, "udsv-ro"), "restart", "web"); err == nil || !strings.Contains(stderr, "permission denied") {
		t.Errorf("status_group member restarting: %v %s", err, stderr)
	}
	if after, _ := e.services(t); after[0].Pid != before[0].Pid {
		t.Error("a refused restart restarted the service")
	}
	if _, stderr, err := e.ctlAs(cred(operator, "udsv-ctl"), "restart", "web"); err != nil {
		t.Errorf("control_group member restarting: %v %s", err, stderr)
	}
	if after, _ := e.services(t); after[0].Pid == before[0].Pid {
		t.Error("the control_group member's restart did nothing")
	}
}

// SIGHUP and ctl reload apply a changed config; a broken one changes
// nothing. udsvisor tells systemd READY, RELOADING and STOPPING.
func TestReloadAndNotify(t *testing.T) {
	testutil.RequireRoot(t)
	notifyDir := testutil.RunDir(t)
	notifyPath := filepath.Join(notifyDir, "notify.sock")
	nconn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nconn.Close()
	t.Setenv("NOTIFY_SOCKET", notifyPath)
	e := startCtlEnv(t, ctlConfig)
	expectNotify(t, nconn, "READY=1")

	added := ctlConfig + `
[services.extra]
command = ["$APP"]
user = "udsv-a"
[[services.extra.sockets]]
path = "$DIR/extra/extra.sock"
`
	e.write(t, added)
	e.up.Signal(unix.SIGHUP)
	expectNotify(t, nconn, "RELOADING=1")
	expectNotify(t, nconn, "READY=1")
	if _, err := get(filepath.Join(e.dir, "extra", "extra.sock")); err != nil {
		t.Errorf("service added by SIGHUP: %v", err)
	}

	before, _ := e.services(t)
	e.write(t, strings.Replace(added, `user = "udsv-b"`, `user = "no-such-user"`, 1))
	out, stderr, err := e.ctl("reload")
	if err == nil || !strings.Contains(stderr, "no-such-user") {
		t.Errorf("ctl reload of a broken config: %v\n%s%s", err, out, stderr)
	}
	after, _ := e.services(t)
	for i := range before {
		if before[i].Pid != after[i].Pid {
			t.Errorf("broken reload changed %s", before[i].Name)
		}
	}

	e.write(t, ctlConfig)
	if out, stderr, err := e.ctl("reload"); err != nil || !strings.Contains(out, "extra") {
		t.Errorf("ctl reload removing extra: %v\n%s%s", err, out, stderr)
	}
	if _, err := os.Lstat(filepath.Join(e.dir, "extra", "extra.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removed service's socket: %v", err)
	}
	if err := e.up.Stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}
	expectNotify(t, nconn, "STOPPING=1")
}

func expectNotify(t *testing.T, c *net.UnixConn, want string) {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != want {
		t.Fatalf("notify: got %q (%v), want %q", buf[:n], err, want)
	}
}

// A second up refuses to start while the first answers on the control
// socket, and touches nothing of the first.
func TestSecondUpRefused(t *testing.T) {
	e := startCtlEnv(t, ctlConfig)
	before, _ := e.services(t)
	sock := filepath.Join(e.dir, "web", "web.sock")
	id := testutil.Birth(t, sock)
	out, err := exec.Command(udsvisorBin, "up", "-c", e.cfg).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "already running") {
		t.Errorf("second up: %v\n%s", err, out)
	}
	after, _ := e.services(t)
	if after[0].Pid != before[0].Pid || testutil.Birth(t, sock) != id {
		t.Error("the second up disturbed the first")
	}
}

// The README's curl example works.
func TestCurlControlAPI(t *testing.T) {
	curl := testutil.RequireCommand(t, "curl")
	e := startCtlEnv(t, ctlConfig)
	out, err := exec.Command(curl, "-sf", "--unix-socket", e.sock, "http://udsvisor/v1/services").Output()
	if err != nil {
		t.Fatal(err)
	}
	var svcs []api.Service
	if err := json.Unmarshal(out, &svcs); err != nil || len(svcs) != 2 {
		t.Errorf("curl /v1/services: %v %s", err, out)
	}
}

// T27: a reload applies the [supervisor] table: an operator removed
// from control_group loses control at once (on a new connection, and the
// control socket's group changes on disk), while a change that needs a
// restart (the control socket's path) refuses the reload and changes
// nothing.
func TestT27ReloadAppliesAuthorisation(t *testing.T) {
	e := startCtlEnv(t, ctlConfig)
	operator := testutil.EnsureUser(t, "udsv-op", "udsv-ctl")
	ctlGID := testutil.EnsureGroup(t, "udsv-ctl")
	cred := &syscall.Credential{Uid: operator.UID, Gid: operator.GID, Groups: []uint32{ctlGID}}
	if _, stderr, err := e.ctlAs(cred, "restart", "web"); err != nil {
		t.Fatalf("control_group member restarting before the reload: %v %s", err, stderr)
	}

	moved := strings.Replace(ctlConfig, `control_socket = "$DIR/ctl/control.sock"`, `control_socket = "$DIR/ctl2/control.sock"`, 1)
	e.write(t, moved)
	before, _ := e.services(t)
	if _, stderr, err := e.ctl("reload"); err == nil || !strings.Contains(stderr, "control_socket changed") {
		t.Errorf("reload moving the control socket: %v %s, want a refusal naming control_socket", err, stderr)
	}
	if after, _ := e.services(t); len(after) != len(before) || after[0].Pid != before[0].Pid {
		t.Error("a refused reload changed the services")
	}

	e.write(t, strings.Replace(ctlConfig, `control_group = "udsv-ctl"`+"\n", "", 1))
	if out, stderr, err := e.ctl("reload"); err != nil {
		t.Fatalf("reload: %v %s %s", err, out, stderr)
	}
	if _, stderr, err := e.ctlAs(cred, "restart", "web"); err == nil || !strings.Contains(stderr, "permission denied") {
		t.Errorf("removed operator restarting after the reload: %v %s, want permission denied", err, stderr)
	}
	var st unix.Stat_t
	if err := unix.Lstat(e.sock, &st); err != nil || st.Gid != 0 {
		t.Errorf("control socket group %d after the reload (%v), want 0", st.Gid, err)
	}
}

// ctl pause leaves a service without a process and its socket holding
// connections (ctl status exits 3: not running); ctl resume serves them.
func TestCtlPauseResume(t *testing.T) {
	e := startCtlEnv(t, ctlConfig)
	if _, stderr, err := e.ctl("pause", "web"); err != nil {
		t.Fatalf("ctl pause web: %v: %s", err, stderr)
	}
	out, _, err := e.ctl("status", "web", "--json")
	var ee *exec.ExitError
	var svcs []api.Service
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || json.Unmarshal([]byte(out), &svcs) != nil ||
		len(svcs) != 1 || svcs[0].State != "paused" || svcs[0].Pid != 0 {
		t.Fatalf("ctl status web while paused: %v\n%s; want exit 3, paused, no pid", err, out)
	}
	conn, err := net.Dial("unix", filepath.Join(e.dir, "web", "web.sock"))
	if err != nil {
		t.Fatalf("connect while paused: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := e.ctl("resume", "web"); err != nil {
		t.Fatalf("ctl resume web: %v: %s", err, stderr)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the request made while paused: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, stderr, err := e.ctl("resume", "worker"); err != nil {
		t.Errorf("ctl resume of a running service: %v: %s; want nothing to do", err, stderr)
	}
	if _, stderr, err := e.ctl("stop", "worker"); err != nil {
		t.Fatal(err, stderr)
	}
	if _, stderr, err := e.ctl("resume", "worker"); err == nil || !strings.Contains(stderr, "resume worker: service is not paused") {
		t.Errorf("ctl resume of a stopped service: %v: %q; want the refusal", err, stderr)
	}
}
