// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// floodScript opens up to 5,000 connections to the socket in argv[1] and
// holds them; connects that would block or fail are counted, not waited
// for. It prints how many it holds, then sleeps until killed.
const floodScript = `
import socket, sys, time
held = []
for i in range(5000):
    s = socket.socket(socket.AF_UNIX)
    s.setblocking(False)
    try:
        s.connect(sys.argv[1])
        held.append(s)
    except OSError:
        s.close()
print(len(held), flush=True)
time.sleep(600)
`

// T18 end to end: an unprivileged user holding thousands of connections
// to a control socket whose mode was loosened to 0666 does not stop
// udsvisor from restarting a killed service or from answering root.
func TestT18FloodDoesNotStopRestartsOrRoot(t *testing.T) {
	python := testutil.RequireCommand(t, "/usr/bin/python3")
	e := startCtlEnv(t, ctlConfig)
	if err := os.Chmod(e.sock, 0o666); err != nil {
		t.Fatal(err)
	}
	b := testutil.EnsureUser(t, "udsv-b")
	flood := exec.Command(python, "-c", floodScript, e.sock)
	flood.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: b.UID, Gid: b.GID}}
	out, err := flood.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { flood.Process.Kill(); flood.Wait() })
	buf := make([]byte, 32)
	n, _ := out.Read(buf) // the flood holds its connections once it prints
	t.Logf("the flooding user holds %s connections", string(buf[:n]))

	before, err := e.services(t)
	if err != nil {
		t.Fatal(err)
	}
	web := before[0]
	if err := unix.Kill(web.Pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Once udsvisor has reaped it, the next request waits in the backlog
	// for the new process.
	e.up.WaitExit(t, "web", web.Pid)
	if pid, err := webPid(filepath.Join(e.dir, "web", "web.sock")); err != nil || pid == web.Pid {
		t.Fatalf("after the SIGKILL of pid %d: answered by pid %d (%v)", web.Pid, pid, err)
	}
	start := time.Now()
	if _, err := e.services(t); err != nil {
		t.Fatalf("root's status during the flood: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("root's status took %v during the flood", d)
	}
}
