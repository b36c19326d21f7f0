// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/proctree"
	"github.com/udsvisor/udsvisor/internal/testutil"
)

// python3 is Debian's, not whatever python3 comes first on PATH.
const python3 = "/usr/bin/python3"

// relayProcess is a `udsvisor __relay` started as the supervisor would:
// the socket at fd 3, LISTEN_PID its own pid, a process group of its own.
type relayProcess struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer // read only after Wait
	done   chan error   // buffered 1: Wait's result
}

// relaySocket binds a Unix socket as the supervisor does; it stays bound
// and listening until the test ends, whatever the relay does with its fd.
func relaySocket(t *testing.T) *net.UnixListener {
	t.Helper()
	dir, err := os.MkdirTemp("", "relay") // short: sun_path has 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "http.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// startRelay runs udsvisor __relay args... with sock (if any) at fd 3 and
// env added to the test's environment. A shell sets LISTEN_PID to its
// own pid, then execs udsvisor, which keeps it; the supervisor's launch
// helper does the same before its exec.
func startRelay(t *testing.T, sock *net.UnixListener, env []string, args ...string) *relayProcess {
	t.Helper()
	shArgs := append([]string{"-c", `LISTEN_PID=$$ exec "$@"`, "sh", udsvisorBin, relayArg}, args...)
	p := &relayProcess{cmd: exec.Command("/bin/sh", shArgs...), done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), env...)
	if sock != nil {
		f, err := sock.File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		p.cmd.ExtraFiles = []*os.File{f}
		p.cmd.Env = append(p.cmd.Env, "LISTEN_FDS=1", "LISTEN_FDNAMES=http")
	}
	p.cmd.Stderr = &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case err := <-p.done:
			p.done <- err
		default:
			unix.Kill(-p.cmd.Process.Pid, unix.SIGKILL)
			<-p.done
		}
	})
	return p
}

// wait returns the relay's wait status once it exited.
func (p *relayProcess) wait(t *testing.T) syscall.WaitStatus {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(30 * time.Second):
		t.Fatalf("the relay did not exit within 30 s; stderr:\n%s", &p.stderr)
	}
	return p.cmd.ProcessState.Sys().(syscall.WaitStatus)
}

func freeTCPPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// A TCP-only app, Python's http.server, is served through the service's
// Unix socket. It runs in the relay's process group, without the
// relay's LISTEN_* and without its sockets. SIGTERM to the group (as the
// supervisor stops a service) ends both, and the relay dies by SIGTERM
// as the app did; the socket, the supervisor's, is still there and
// listening.
func TestRelayServesTheAppThenExitsLikeIt(t *testing.T) {
	if _, err := os.Stat(python3); err != nil {
		testutil.Unavailable(t, "%s: %v", python3, err)
	}
	sock := relaySocket(t)
	port := freeTCPPort(t)
	p := startRelay(t, sock, []string{"LISTEN_PIDFDID=1"},
		"-port", port, "--", python3, "-m", "http.server", "--bind", "127.0.0.1", port)

	// The request may come before the app listens: the relay retries.
	body, err := get(sock.Addr().String())
	if err != nil {
		t.Fatalf("GET through the relay: %v; stderr:\n%s", err, &p.stderr)
	}
	if !strings.Contains(body, "Directory listing for /") {
		t.Errorf("the app answered %q", body)
	}

	relayPid := p.cmd.Process.Pid
	kids := proctree.Children(relayPid)
	if len(kids) != 1 {
		t.Fatalf("relay %d has children %v, want the app", relayPid, kids)
	}
	app := kids[0]
	if pgid, err := unix.Getpgid(app); err != nil || pgid != relayPid {
		t.Errorf("app %d in process group %d (%v), want the relay's, %d", app, pgid, err, relayPid)
	}
	env, err := testutil.ProcEnviron(app)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "LISTEN_") {
			t.Errorf("the app has %s in its environment", kv)
		}
	}
	sockFile, err := sock.File()
	if err != nil {
		t.Fatal(err)
	}
	// The relay catches the signals it ignores, so the app inherits
	// none of them ignored, and it blocks none.
	status, err := testutil.ProcStatus(app)
	if err != nil {
		t.Fatal(err)
	}
	ign, _ := strconv.ParseUint(status["SigIgn"], 16, 64)
	for _, sig := range []unix.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGTERM} {
		if ign&(1<<(sig-1)) != 0 {
			t.Errorf("the app ignores %v (SigIgn %s)", sig, status["SigIgn"])
		}
	}
	if status["SigBlk"] != "0000000000000000" {
		t.Errorf("the app blocks signals: SigBlk %s", status["SigBlk"])
	}
	var sst unix.Stat_t
	err = unix.Fstat(int(sockFile.Fd()), &sst)
	sockFile.Close()
	if err != nil {
		t.Fatal(err)
	}
	fds, err := testutil.ProcFDs(app)
	if err != nil {
		t.Fatal(err)
	}
	for fd, target := range fds {
		if target == fmt.Sprintf("socket:[%d]", sst.Ino) {
			t.Errorf("the app has the service's socket at fd %d", fd)
		}
	}

	if err := unix.Kill(-relayPid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ws := p.wait(t)
	if !ws.Signaled() || ws.Signal() != unix.SIGTERM {
		t.Errorf("relay ended with %v, want killed by SIGTERM as the app was; stderr:\n%s", ws, &p.stderr)
	}
	if want := "relaying 1 sockets to 127.0.0.1:" + port; !strings.Contains(p.stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, &p.stderr)
	}
	if err := unix.Kill(app, 0); !errors.Is(err, unix.ESRCH) {
		t.Errorf("app %d after the relay exited: %v", app, err)
	}
	c, err := net.Dial("unix", sock.Addr().String())
	if err != nil {
		t.Fatalf("the socket after the relay exited: %v", err)
	}
	c.Close()
}

// The app's exit status is the relay's: the same code; the same signal
// for those the relay can die by; 128+N for the others.
func TestRelayExitsWithTheAppStatus(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   func(syscall.WaitStatus) bool
	}{
		{"exit 7", func(ws syscall.WaitStatus) bool { return ws.Exited() && ws.ExitStatus() == 7 }},
		{"exit 0", func(ws syscall.WaitStatus) bool { return ws.Exited() && ws.ExitStatus() == 0 }},
		{"kill -KILL $$", func(ws syscall.WaitStatus) bool { return ws.Signaled() && ws.Signal() == unix.SIGKILL }},
		{"kill -HUP $$", func(ws syscall.WaitStatus) bool { return ws.Signaled() && ws.Signal() == unix.SIGHUP }},
		{"kill -SEGV $$", func(ws syscall.WaitStatus) bool { return ws.Exited() && ws.ExitStatus() == 128+11 }},
	} {
		t.Run(tc.script, func(t *testing.T) {
			p := startRelay(t, relaySocket(t), nil, "-port", freeTCPPort(t), "--", "/bin/sh", "-c", tc.script)
			if ws := p.wait(t); !tc.want(ws) {
				t.Errorf("relay ended with %v; stderr:\n%s", ws, &p.stderr)
			}
		})
	}
}

// Without sockets, a port or an app, the relay refuses to start: exit
// status 2 and why on stderr.
func TestRelayRefusesABadStart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sockets bool
		args    []string
		want    string
	}{
		{"no sockets", false, []string{"-port", "8080", "--", "/bin/true"}, "no sockets were passed"},
		{"no port", true, []string{"--", "/bin/true"}, "-port 0"},
		{"port out of range", true, []string{"-port", "65536", "--", "/bin/true"}, "-port 65536"},
		{"bad proxy", true, []string{"-port", "8080", "-proxy", "v3", "--", "/bin/true"}, `unknown PROXY protocol version "v3"`},
		{"no --", true, []string{"-port", "8080", "/bin/true"}, "the app's command goes after --"},
		{"no app", true, []string{"-port", "8080", "--"}, "no app command"},
		{"relative app", true, []string{"-port", "8080", "--", "true"}, `app "true": want an absolute path`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sock *net.UnixListener
			if tc.sockets {
				sock = relaySocket(t)
			}
			p := startRelay(t, sock, nil, tc.args...)
			ws := p.wait(t)
			if !ws.Exited() || ws.ExitStatus() != 2 || !strings.Contains(p.stderr.String(), tc.want) {
				t.Errorf("relay ended with %v, stderr %q; want exit status 2 and %q", ws, &p.stderr, tc.want)
			}
		})
	}
}
