// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// Fault "poisoned listener" (SECURITY-NOTES section 6): the first process
// accepts one connection, then calls shutdown(SHUT_RDWR) on its fd 3 and
// exits. The child shares the open file description with udsvisor's copy,
// so the socket refuses every connect from then on. After the exit
// udsvisor sees it, puts a new socket with the configured owner and mode
// at the same path, and the next process (the test app) serves requests
// through it.
func TestFaultPoisonedListener(t *testing.T) {
	a := users(t)
	// An absolute path: the service user cannot reach root's PATH shims.
	python := testutil.RequireCommand(t, "/usr/bin/python3")
	dir := testutil.RunDir(t)
	// Where the first run leaves its mark, writable by the service user
	// only.
	flags := filepath.Join(dir, "flags")
	if err := os.Mkdir(flags, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(flags, int(a.UID), int(a.GID)); err != nil {
		t.Fatal(err)
	}
	flag := filepath.Join(flags, "poisoned")
	// The accept lets the test read the socket's identity before the
	// poisoning and then trigger it with a connect, without a sleep.
	poisoner := "import socket, sys; s = socket.socket(fileno=3); c, _ = s.accept(); c.close(); " +
		"s.shutdown(socket.SHUT_RDWR); sys.exit(1)"
	script := fmt.Sprintf(`if [ -e %[1]s ]; then exec %[2]s; fi; touch %[1]s; exec %[3]s -c %[4]s`,
		flag, testApp, python, shellQuote(poisoner))
	h := startIn(t, dir, `
[services.app]
command = ["/bin/sh", "-c", `+strconv.Quote(script)+`]
user = "udsv-a"
min_uptime = "100ms"

[[services.app.sockets]]
name = "http"
path = "$DIR/app/http.sock"
group = "udsv-g1"
mode = "0660"
directory_mode = "0750"
`)
	sock := filepath.Join(dir, "app", "http.sock")
	ino, btime := statxIdentity(t, sock)

	// Trigger the poisoning: the first process accepts this connection
	// and answers it with EOF.
	first := h.waitState("app", Starting).Pid
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A bound on the read, should the poisoner never run and the test
	// app accept this connection instead.
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read from the poisoner: %d bytes, %v; want EOF", n, err)
	}

	// The socket is rebound when the exit is handled, before the next
	// process is launched.
	h.waitFor("app", "a new process", func(st Status) bool { return st.Pid != 0 && st.Pid != first })
	rep, err := getReport(sock)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pid == first {
		t.Errorf("served by the first process %d; want its successor", first)
	}
	if _, err := os.Stat(flag); err != nil {
		t.Errorf("the first process did not run the poisoner: %v", err)
	}
	// The old socket is dead for good, so the path must name another one.
	ino2, btime2 := statxIdentity(t, sock)
	if ino2 == ino && btime2 == btime {
		t.Error("the socket file was not replaced, yet requests succeed")
	}
	var st unix.Stat_t
	if err := unix.Lstat(sock, &st); err != nil {
		t.Fatal(err)
	}
	conf := h.sup.cfg.Services[0].Sockets[0]
	// The service's own view of its socket: what its next launch passes.
	listener := h.sup.view.Load().services[h.sup.cfg.Services[0].Name].svc.files()[0]
	g1 := conf.GID
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Mode&0o7777 != 0o660 || st.Uid != a.UID || st.Gid != g1 {
		t.Errorf("new socket file: type %#o mode %04o owner %d:%d, want a socket 0660 owned %d:%d",
			st.Mode&unix.S_IFMT, st.Mode&0o7777, st.Uid, st.Gid, a.UID, g1)
	}
	// The private link follows, so a later unlink restores the new socket.
	if pino, pbt := statxIdentity(t, filepath.Join(dir, "app", ".http.sock.udsvisor")); pino != ino2 || pbt != btime2 {
		t.Error("the private link still names the old socket")
	}
	// The successor holds the new socket (the test app's activation code
	// moves it off fd 3).
	fds, err := testutil.ProcFDs(rep.Pid)
	if err != nil {
		t.Fatal(err)
	}
	var sst unix.Stat_t
	if err := unix.Fstat(int(listener.Fd()), &sst); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("socket:[%d]", sst.Ino)
	held := false
	for _, target := range fds {
		held = held || target == want
	}
	if !held {
		t.Errorf("the new process has fds %v, none of them udsvisor's new socket %s", fds, want)
	}
}

// shellQuote quotes s as one sh word.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
