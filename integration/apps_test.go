// SPDX-License-Identifier: Apache-2.0

//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/internal/testutil"
	"github.com/udsvisor/udsvisor/internal/testutil/testapp"
)

// answer is what the test apps reply: testdata's Python apps send pid,
// uid and path of testapp's report, and their own two fields.
type answer struct {
	testapp.Report
	Server string `json:"server"` // "uvicorn", "gunicorn"; empty for testapp
	Ppid   int    `json:"ppid"`   // the Python apps only
}

// fetch GETs url through the front server and decodes a 200 answer.
func fetch(t *testing.T, url string) answer {
	t.Helper()
	a, err := tryFetch(url)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func tryFetch(url string) (answer, error) {
	var a answer
	client := &http.Client{Timeout: 20 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("GET %s: %s %v\n%s", url, resp.Status, err, body)
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return a, fmt.Errorf("GET %s: %w in %q", url, err, body)
	}
	return a, nil
}

// waitWorkers waits until n distinct gunicorn workers of arbiter have
// answered through url: every worker serves the socket it inherited from
// the arbiter.
func waitWorkers(t *testing.T, url string, arbiter, n int) {
	t.Helper()
	seen := map[int]bool{}
	// A poll: udsvisor sees only the arbiter, and gunicorn tells nobody
	// when its workers are up.
	testutil.Eventually(t, 30*time.Second, func() error {
		a, err := tryFetch(url)
		if err != nil {
			return err
		}
		if a.Server != "gunicorn" || a.Ppid != arbiter {
			return fmt.Errorf("answer %+v is not from a worker of gunicorn pid %d", a, arbiter)
		}
		seen[a.Pid] = true
		if len(seen) < n {
			return fmt.Errorf("workers seen: %v, want %d", seen, n)
		}
		return nil
	})
}

// checkSocket asserts what lstat says about the socket file on disk.
func checkSocket(t *testing.T, path string, mode os.FileMode, owner testutil.User, group string) {
	t.Helper()
	g, err := user.LookupGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != os.ModeSocket|mode || strconv.Itoa(int(st.Uid)) != strconv.Itoa(int(owner.UID)) || strconv.Itoa(int(st.Gid)) != g.Gid {
		t.Errorf("%s: %v uid %d gid %d, want %v %s(%d) %s(%s)", path, fi.Mode(), st.Uid, st.Gid, os.ModeSocket|mode, owner.Name, owner.UID, group, g.Gid)
	}
}

// connectAs tries connect(2) on a Unix socket as user u, from a separate
// process with u's credentials, and returns its combined output.
func connectAs(t *testing.T, u testutil.User, path string) (string, error) {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", "-c",
		"import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// oneSocketApp is the TOML of service name: command (a TOML array) run as
// udsv-app with the keys extra, on one Unix socket $DIR/NAME/NAME.sock,
// srw-rw---- udsv-app:group, routed at /.
func oneSocketApp(name, command, group, extra string) string {
	return fmt.Sprintf(`
[services.%[1]s]
command = %[2]s
user = "udsv-app"%[4]s
[[services.%[1]s.sockets]]
name = "http"
path = "$DIR/%[1]s/%[1]s.sock"
group = %[3]q
mode = "0660"
[[services.%[1]s.proxy]]
location = "/"
socket = "http"
`, name, command, group, extra)
}

// appStack runs testapp as udsv-app behind one Unix socket, group group,
// routed at /.
func appStack(t *testing.T, group string) *stack {
	t.Helper()
	testutil.EnsureUser(t, "udsv-app")
	return startStack(t, oneSocketApp("app", `["$APP"]`, group, ""))
}

// frontedApp is a service that startFronted runs behind a proxy.
type frontedApp struct {
	*stack
	user testutil.User // udsv-app, whom the service runs as
	sock string        // the service's socket
	addr string        // the proxy's
	svc  api.Service   // the service once running
}

// startFronted runs command (a TOML array) as service name, as
// oneSocketApp writes it with group www-data, checks its socket on disk,
// and starts the proxy kind in front of it on a free port, on the config
// `udsvisor proxy KIND` writes.
func startFronted(t *testing.T, kind, name, command string) frontedApp {
	t.Helper()
	app := testutil.EnsureUser(t, "udsv-app")
	s := startStack(t, oneSocketApp(name, command, "www-data", ""))
	sock := filepath.Join(s.dir, name, name+".sock")
	checkSocket(t, sock, 0o660, app, "www-data")
	addr := freePort(t)
	started := false
	for _, f := range fronts {
		if f.kind == kind {
			f.start(t, proxyConfig(t, kind, s.cfg, addr), addr)
			started = true
		}
	}
	if !started {
		t.Fatalf("no proxy %q", kind)
	}
	svc, err := s.service(name)
	if err != nil {
		t.Fatal(err)
	}
	return frontedApp{stack: s, user: app, sock: sock, addr: addr, svc: svc}
}

// nginx → udsvisor → uvicorn --fd 3, as an unprivileged user: the socket
// is srw-rw---- app:www-data, nginx (www-data) gets through, a third user
// is refused by the kernel, and a SIGKILLed uvicorn is replaced on the
// same socket.
func TestNginxUvicorn(t *testing.T) {
	testutil.RequireCommand(t, "/usr/bin/uvicorn")
	third := testutil.EnsureUser(t, "udsv-b")
	f := startFronted(t, "nginx", "asgi",
		`["/usr/bin/uvicorn", "--fd", "3", "--app-dir", "$APPDIR", "--no-access-log", "asgi_app:app"]`)
	for _, path := range []string{"/", "/items/42"} {
		a := fetch(t, "http://"+f.addr+path)
		if a.Server != "uvicorn" || a.Pid != f.svc.Pid || a.UID != int(f.user.UID) {
			t.Errorf("GET %s answered %+v; want uvicorn as pid %d, uid %d", path, a, f.svc.Pid, f.user.UID)
		}
	}

	out, err := connectAs(t, third, f.sock)
	if err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("connect as %s: %v %q, want EACCES", third.Name, err, out)
	}

	before := testutil.Birth(t, f.sock)
	if err := unix.Kill(f.svc.Pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a := fetch(t, "http://"+f.addr+"/after-kill")
	if a.Server != "uvicorn" || a.Pid == f.svc.Pid {
		t.Errorf("after SIGKILL of pid %d: %+v", f.svc.Pid, a)
	}
	if after := testutil.Birth(t, f.sock); after != before {
		t.Errorf("socket re-created by the restart: %s, was %s", after, before)
	}
}

// Apache (ProxyPass … unix:…|http://localhost/) → udsvisor → gunicorn,
// which takes the socket from LISTEN_FDS (no --bind). A restart keeps the
// socket: gunicorn unlinks it on exit unless LISTEN_PID was its own pid
// (SECURITY-NOTES 0.11).
func TestApacheGunicorn(t *testing.T) {
	testutil.RequireCommand(t, "/usr/bin/gunicorn")
	// --log-level error: udsvisor stops the whole process group, so the
	// workers' SIGCHLD reaches the arbiter while it logs, and gunicorn
	// 20.1 logs a warning from its SIGCHLD handler, which fails with a
	// reentrant write to stderr and hangs the arbiter until stop_timeout
	// (benoitc/gunicorn#2564, #3004; fixed in #3441).
	f := startFronted(t, "apache", "wsgi",
		`["/usr/bin/gunicorn", "--chdir", "$APPDIR", "--workers", "2", "--log-level", "error", "wsgi_app:app"]`)
	a := fetch(t, "http://"+f.addr+"/hello")
	if a.Server != "gunicorn" || a.Ppid != f.svc.Pid || a.UID != int(f.user.UID) {
		t.Errorf("answer %+v; want a gunicorn worker of pid %d, uid %d", a, f.svc.Pid, f.user.UID)
	}
	waitWorkers(t, "http://"+f.addr+"/hello", f.svc.Pid, 2)

	before := testutil.Birth(t, f.sock)
	if out, err := exec.Command(built.udsvisor, "ctl", "-s", f.ctlSock, "restart", "wsgi").CombinedOutput(); err != nil {
		t.Fatalf("ctl restart wsgi: %v\n%s", err, out)
	}
	restarted, err := f.service("wsgi")
	if err != nil {
		t.Fatal(err)
	}
	if restarted.Pid == f.svc.Pid {
		t.Fatalf("ctl restart kept pid %d", f.svc.Pid)
	}
	waitWorkers(t, "http://"+f.addr+"/after-restart", restarted.Pid, 2)
	if after := testutil.Birth(t, f.sock); after != before {
		t.Errorf("socket re-created by the restart: %s, was %s", after, before)
	}
}

// nginx → udsvisor → a Go app using go-systemd activation with two named
// sockets, each behind its own location: the app reports which
// LISTEN_FDNAMES name served each request.
func TestNginxGoAppNamedSockets(t *testing.T) {
	testutil.EnsureUser(t, "udsv-app")
	s := startStack(t, `
[services.goapp]
command = ["$APP"]
user = "udsv-app"
[[services.goapp.sockets]]
name = "http"
path = "$DIR/goapp/http.sock"
group = "www-data"
mode = "0660"
[[services.goapp.sockets]]
name = "metrics"
path = "$DIR/goapp/metrics.sock"
group = "www-data"
mode = "0660"
[[services.goapp.proxy]]
location = "/"
socket = "http"
[[services.goapp.proxy]]
location = "/metrics/"
socket = "metrics"
`)
	addr := freePort(t)
	startNginx(t, proxyConfig(t, "nginx", s.cfg, addr), addr)
	for path, want := range map[string]string{"/": "http", "/api/x": "http", "/metrics/": "metrics", "/metrics/x": "metrics"} {
		a := fetch(t, "http://"+addr+path)
		if a.Socket != want || strings.Join(a.Names, ",") != "http,metrics" {
			t.Errorf("GET %s served on socket %q (names %v), want %q", path, a.Socket, a.Names, want)
		}
	}
}
