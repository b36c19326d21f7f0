// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// onDemandConfig is an on-demand service of the test app.
func onDemandConfig(name, keys string) string {
	return `
[services.` + name + `]
command = ["$APP"]
user = "udsv-a"
start = "on-demand"
` + keys + `
[[services.` + name + `.sockets]]
path = "$DIR/` + name + `.sock"
`
}

// An on-demand service has no process until a connection comes; that
// first request waits for the start and is served. After its process
// ends, the service waits again; ctl start starts it at once.
func TestOnDemandStartsOnFirstConnection(t *testing.T) {
	users(t)
	h := start(t, onDemandConfig("admin", ""))
	if st := h.status("admin"); st.State != Waiting || st.Pid != 0 {
		t.Fatalf("before any connection: %s pid %d; want waiting, no process", st.State, st.Pid)
	}
	sock := filepath.Join(h.dir, "admin.sock")
	rep, err := getReport(sock)
	if err != nil {
		t.Fatalf("the first request: %v", err)
	}
	// It took the connection that started it: it has started.
	if st := h.waitState("admin", Running); st.Pid != rep.Pid {
		t.Errorf("served by pid %d, status says %d", rep.Pid, st.Pid)
	}
	if err := unix.Kill(rep.Pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := h.waitFor("admin", "waiting again", func(st Status) bool { return st.State == Waiting })
	if st.Pid != 0 || st.Failures != 0 {
		t.Errorf("after the process was killed: pid %d, failures %d; want no process and no failed start", st.Pid, st.Failures)
	}
	rep2, err := getReport(sock)
	if err != nil || rep2.Pid == rep.Pid {
		t.Fatalf("the next request: %+v, %v; want a new process", rep2, err)
	}
	if err := h.sup.Stop(context.Background(), "admin"); err != nil {
		t.Fatal(err)
	}
	if err := h.sup.Start(context.Background(), "admin"); err != nil {
		t.Fatal(err)
	}
	if st := h.status("admin"); st.Pid == 0 {
		t.Errorf("ctl start of an on-demand service: %s with no process; want one at once", st.State)
	}
}

// With idle_stop, a process that had no connection for that long is
// stopped and the service waits for the next one; a connection kept open
// keeps it running.
func TestOnDemandIdleStop(t *testing.T) {
	users(t)
	h := start(t, onDemandConfig("quiet", `idle_stop = "300ms"`)+onDemandConfig("busy", `idle_stop = "300ms"`))
	ctx := context.Background()
	busy, err := net.Dial("unix", filepath.Join(h.dir, "busy.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	get := func() int {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://busy/", nil)
		if err := req.Write(busy); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(busy), req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return h.status("busy").Pid
	}
	busyPid := get()

	// quiet serves once, then is stopped for idleness, twice: by then
	// busy has been idle of new connections for more than a period.
	quiet := filepath.Join(h.dir, "quiet.sock")
	for range 2 {
		rep, err := getReport(quiet)
		if err != nil {
			t.Fatal(err)
		}
		st := h.waitFor("quiet", "stopped for idleness", func(st Status) bool { return st.State == Waiting && st.Pid == 0 })
		if st.LastExit == nil || st.LastExit.Pid != rep.Pid || st.LastExit.String() != "killed by SIGTERM" {
			t.Fatalf("quiet's last exit %v; want pid %d stopped with SIGTERM", st.LastExit, rep.Pid)
		}
	}
	if st := h.status("busy"); st.State != Running || st.Pid != busyPid {
		t.Fatalf("busy with a connection open: %s pid %d; want still running with pid %d", st.State, st.Pid, busyPid)
	}
	busy.Close()
	h.waitFor("busy", "stopped once its connection closed", func(st Status) bool { return st.State == Waiting })
}

// /proc/net/tcp{,6} addresses are 32-bit words in host order, then the
// port.
func TestParseProcNetAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000000000000000000001000000:1F90": "[::1]:8080",
		"0000000000000000FFFF00000100007F:0050": "127.0.0.1:80",
	} {
		got, ok := parseProcNetAddr(in)
		if !ok || got.String() != want {
			t.Errorf("parseProcNetAddr(%q) = %v, %v; want %s", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "0100007F", "0100007F:XYZ", "01007F:1F90"} {
		if _, ok := parseProcNetAddr(bad); ok {
			t.Errorf("parseProcNetAddr(%q) accepted", bad)
		}
	}
}

// An on-demand service whose command exits at once, with a connection
// waiting, backs off and ends failed after start_limit, as any service:
// the waiting connection must not start it again and again.
func TestOnDemandCrashLoopEndsFailed(t *testing.T) {
	users(t)
	h := start(t, strings.Replace(onDemandConfig("broken", "start_limit = 3\n"), `command = ["$APP"]`, `command = ["$APP", "-exit", "1"]`, 1))
	conn, err := net.Dial("unix", filepath.Join(h.dir, "broken.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st := h.waitState("broken", Failed)
	if st.Failures != 3 || st.Restarts != 2 {
		t.Errorf("failures %d, restarts %d; want 3 and 2", st.Failures, st.Restarts)
	}
}
