// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// notifyConfig is a ready = "notify" service: the test app sends what its
// flags say (see integration/testapp/notify.go).
func notifyConfig(name string, args, keys string) string {
	return `
[services.` + name + `]
command = ["$APP", ` + args + `]
user = "udsv-a"
ready = "notify"
min_uptime = "1ms"
` + keys + `
[[services.` + name + `.sockets]]
path = "$DIR/` + name + `.sock"
`
}

func sendSignal(t *testing.T, h *harness, name string, sig unix.Signal) {
	t.Helper()
	if err := h.sup.Signal(context.Background(), name, sig); err != nil {
		t.Fatal(err)
	}
}

// A notify service is starting until it sends READY=1, whatever it does
// before: serving requests and outliving min_uptime are no proof. STATUS=
// is shown; NOTIFY_SOCKET is the process's own.
func TestNotifyReadyDecidesStarted(t *testing.T) {
	users(t)
	h := start(t, notifyConfig("app", `"-notify", "STATUS=warming up", "-notify-usr1", "STATUS=ready\nREADY=1"`, ""))
	st := h.waitFor("app", "STATUS=warming up", func(st Status) bool { return st.StatusText == "warming up" })
	if _, err := getReport(filepath.Join(h.dir, "app.sock")); err != nil {
		t.Fatal(err)
	}
	if st = h.status("app"); st.State != Starting {
		t.Fatalf("before READY=1, having served a request: %s; want starting", st.State)
	}
	env, err := testutil.ProcEnviron(st.Pid)
	if err != nil {
		t.Fatal(err)
	}
	var sock string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "NOTIFY_SOCKET="); ok {
			sock = v
		}
		if strings.HasPrefix(kv, "WATCHDOG_USEC=") {
			t.Errorf("%s without a watchdog", kv)
		}
	}
	if !strings.HasPrefix(sock, "@") {
		t.Errorf("NOTIFY_SOCKET=%q; want an abstract address", sock)
	}
	sendSignal(t, h, "app", unix.SIGUSR1)
	if st := h.waitState("app", Running); st.StatusText != "ready" || st.Failures != 0 {
		t.Errorf("after READY=1: status %q, failures %d", st.StatusText, st.Failures)
	}
}

// A notify service that never says READY=1 is killed at start_timeout,
// and that counts as a failed start; EXTEND_TIMEOUT_USEC= moves the
// deadline.
func TestNotifyStartTimeout(t *testing.T) {
	users(t)
	h := start(t, notifyConfig("mute", `"-notify", "STATUS=never ready"`, `start_timeout = "300ms"
start_limit = 1`)+
		notifyConfig("slow", `"-notify", "EXTEND_TIMEOUT_USEC=60000000", "-notify-usr1", "READY=1"`, `start_timeout = "300ms"`))
	slow := h.waitFor("slow", "a process", func(st Status) bool { return st.Pid != 0 })
	st := h.waitState("mute", Failed)
	if st.Failures != 1 || st.LastExit == nil || st.LastExit.String() != "killed by SIGKILL" {
		t.Errorf("mute: failures %d, last exit %v; want 1 and killed by SIGKILL", st.Failures, st.LastExit)
	}
	if !strings.Contains(h.logs.String(), "no READY=1 within start_timeout") {
		t.Error("the log does not say why the process was killed")
	}
	// mute's 300 ms are over, and slow's too, but slow asked for more.
	if now := h.status("slow"); now.State != Starting || now.Pid != slow.Pid {
		t.Fatalf("slow after its start_timeout: %s pid %d; want still starting with pid %d", now.State, now.Pid, slow.Pid)
	}
	sendSignal(t, h, "slow", unix.SIGUSR1)
	h.waitState("slow", Running)
}

// A started notify process that stops sending WATCHDOG=1 within watchdog
// is killed and restarted; one that keeps sending lives on.
func TestNotifyWatchdog(t *testing.T) {
	users(t)
	h := start(t, notifyConfig("silent", `"-notify", "READY=1"`, `watchdog = "300ms"`)+
		notifyConfig("alive", `"-notify", "READY=1", "-watchdog-keepalive"`, `watchdog = "300ms"`))
	alive := h.waitState("alive", Running)
	env, err := testutil.ProcEnviron(alive.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(env, "WATCHDOG_USEC=300000") {
		t.Errorf("environment lacks WATCHDOG_USEC=300000: %v", env)
	}
	st := h.waitFor("silent", "two watchdog kills", func(st Status) bool { return st.Restarts >= 2 })
	if st.LastExit == nil || st.LastExit.String() != "killed by SIGKILL" || st.Failures != 0 {
		t.Errorf("silent: last exit %v, failures %d; want killed by SIGKILL and no failed start", st.LastExit, st.Failures)
	}
	if now := h.status("alive"); now.State != Running || now.Pid != alive.Pid || now.Restarts != 0 {
		t.Errorf("alive after two of silent's watchdog periods: %s pid %d restarts %d; want running, pid %d, no restart",
			now.State, now.Pid, now.Restarts, alive.Pid)
	}
}

// RELOADING=1 shows the service reloading until READY=1; MAINPID= names a
// process of the service's group, never another.
func TestNotifyReloadingAndMainPid(t *testing.T) {
	users(t)
	h := start(t, notifyConfig("app", `"-grandchild", "-notify", "READY=1\nMAINPID=1",
		"-notify-usr1", "RELOADING=1\nSTATUS=reloading", "-notify-usr2", "READY=1\nSTATUS=reloaded\nMAINPID={grandchild}"`, ""))
	st := h.waitState("app", Running)
	if st.MainPid != 0 {
		t.Errorf("MAINPID=1 accepted: main pid %d", st.MainPid)
	}
	rep, err := getReport(filepath.Join(h.dir, "app.sock"))
	if err != nil {
		t.Fatal(err)
	}
	sendSignal(t, h, "app", unix.SIGUSR1)
	h.waitState("app", Reloading)
	sendSignal(t, h, "app", unix.SIGUSR2)
	st = h.waitFor("app", "reloaded", func(st Status) bool { return st.State == Running && st.StatusText == "reloaded" })
	if st.MainPid != rep.Grandchild || st.Pid != rep.Pid {
		t.Errorf("main pid %d, pid %d; want the grandchild %d and the process %d", st.MainPid, st.Pid, rep.Grandchild, rep.Pid)
	}
}

// T25: only the service's own processes are heard on its NOTIFY_SOCKET.
// Another user's READY=1, root's from outside the group, empty, over-long
// and NUL-laden datagrams and datagrams carrying fds change nothing, the
// fds are closed, and the reader keeps reading: the service's own
// messages still work.
func TestT25NotifySpoofing(t *testing.T) {
	users(t)
	b := testutil.EnsureUser(t, "udsv-b")
	h := start(t, notifyConfig("app", `"-notify", "STATUS=waiting", "-notify-usr1", "STATUS=checkpoint", "-notify-usr2", "READY=1"`, ""))
	st := h.waitFor("app", "STATUS=waiting", func(st Status) bool { return st.StatusText == "waiting" })
	env, err := testutil.ProcEnviron(st.Pid)
	if err != nil {
		t.Fatal(err)
	}
	var addr string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "NOTIFY_SOCKET="); ok {
			addr = v
		}
	}

	// Another user, with the test app's own sd_notify.
	spoof := exec.Command(testApp, "-notify-send", `READY=1\nSTATUS=spoofed\nMAINPID=1`)
	spoof.Env = []string{"NOTIFY_SOCKET=" + addr}
	spoof.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: b.UID, Gid: b.GID}}
	if out, err := spoof.CombinedOutput(); err != nil {
		t.Fatalf("spoofer: %v: %s", err, out)
	}
	// Root, from outside the service's process group.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrUnix{Name: addr}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, m := range []struct{ p, oob []byte }{
		{nil, nil},
		{[]byte(strings.Repeat("READY=1\n", 8192)), nil},
		{[]byte("READY=1\x00"), nil},
		{[]byte("READY=1\nSTATUS=root"), nil},
		{[]byte("STATUS=with fd"), unix.UnixRights(int(r.Fd()))},
	} {
		if err := unix.Sendmsg(fd, m.p, m.oob, to, 0); err != nil {
			t.Fatalf("send %d bytes: %v", len(m.p), err)
		}
	}
	r.Close()

	// The service's own message comes after all of those: once it is
	// seen, they have been read.
	sendSignal(t, h, "app", unix.SIGUSR1)
	st = h.waitFor("app", "STATUS=checkpoint", func(st Status) bool { return st.StatusText == "checkpoint" })
	if st.State != Starting || st.MainPid != 0 {
		t.Fatalf("after the spoofed messages: %s, main pid %d; want starting and none", st.State, st.MainPid)
	}
	// udsvisor closed the read end it was sent: the pipe has no reader.
	fds := []unix.PollFd{{Fd: int32(w.Fd()), Events: unix.POLLOUT}}
	if _, err := unix.Poll(fds, 5000); err != nil || fds[0].Revents&unix.POLLERR == 0 {
		t.Errorf("the pipe's read end is still open somewhere (revents %#x, %v): udsvisor kept a sender's fd", fds[0].Revents, err)
	}
	sendSignal(t, h, "app", unix.SIGUSR2)
	h.waitState("app", Running)
}

// A service without ready = "notify" gets no NOTIFY_SOCKET and no
// WATCHDOG_USEC.
func TestNoNotifySocketWithoutNotify(t *testing.T) {
	users(t)
	h := start(t, appConfig)
	st := h.waitState("app", Starting)
	env, err := testutil.ProcEnviron(st.Pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "NOTIFY_SOCKET=") || strings.HasPrefix(kv, "WATCHDOG_USEC=") {
			t.Errorf("%s in a service without ready = \"notify\"", kv)
		}
	}
}
