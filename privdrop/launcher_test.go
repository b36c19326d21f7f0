// SPDX-License-Identifier: Apache-2.0

//go:build linux

package privdrop_test

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
	"github.com/udsvisor/udsvisor/privdrop"
)

// startVia launches the probe through ln, as the supervisor does, and
// returns its pid and report; the probe is killed when the test ends.
func startVia(t *testing.T, ln *privdrop.Launcher, spec *privdrop.Spec, files []*os.File) (int, string, report) {
	t.Helper()
	return startWithStdin(t, ln, spec, nil, files)
}

// startWithStdin is startVia with stdin as the command's stdin (nil:
// /dev/null).
func startWithStdin(t *testing.T, ln *privdrop.Launcher, spec *privdrop.Spec, stdin *os.File, files []*os.File) (int, string, report) {
	t.Helper()
	r, w := blockingPipe(t)
	stdoutPipe, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", r.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	l, err := privdrop.Prepare("", spec, files, w, nil)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if stdin != nil {
		l.SetStdin(stdin)
	}
	pid, err := ln.Start(l)
	if err != nil {
		l.Abort()
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGKILL)
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
	})
	w.Close()
	if err := l.AfterStart(); err != nil {
		t.Fatalf("AfterStart: %v", err)
	}
	return pid, stdoutPipe, readReport(t, bufio.NewReader(r), nil)
}

// A child started by the Launcher has exactly its own fds, however many
// the starting process holds (the launcher's thread forks from a table
// of its own, T10), and gets its sockets by name with a LISTEN_PID of
// its own.
func TestLauncherChildFDs(t *testing.T) {
	u := testutil.EnsureUser(t, "udsv-a")
	ln, err := privdrop.NewLauncher(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ln.Close)
	// Opened after the launcher, so only the process's table has them;
	// one is not close-on-exec, as a leak would be.
	var extra []int
	for range 500 {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		extra = append(extra, fd)
	}
	leak, err := syscall.Open("/etc/hostname", syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	extra = append(extra, leak)
	t.Cleanup(func() {
		for _, fd := range extra {
			unix.Close(fd)
		}
	})

	spec := probeSpec(t, u, 2, "web:admin")
	files, targets := listeners(t, spec.Dir, "web", "admin")
	pid, stdoutPipe, rep := startVia(t, ln, spec, files)
	want := map[int]string{0: "/dev/null", 1: stdoutPipe, 2: "/dev/null", 3: targets[0], 4: targets[1]}
	got, err := testutil.ProcFDs(pid)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("/proc/%d/fd: %v, want exactly %v", pid, got, want)
	}
	if rep.PID != pid || !slices.Equal(rep.Activation, []string{"web", "admin"}) {
		t.Errorf("probe pid %d (started %d), activation names %q", rep.PID, pid, rep.Activation)
	}
	// The launcher closes its copies; the process's stay open.
	for _, f := range files {
		if _, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0); err != nil {
			t.Errorf("socket fd %d of the process: %v", f.Fd(), err)
		}
	}
}

// A socket handed as stdin (stdin = true) is the child's fd 0, the others
// follow at 3 with LISTEN_FDS counting only them.
func TestLauncherStdinSocket(t *testing.T) {
	u := testutil.EnsureUser(t, "udsv-a")
	ln, err := privdrop.NewLauncher(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ln.Close)
	spec := probeSpec(t, u, 1, "web")
	files, targets := listeners(t, spec.Dir, "inherited", "web")
	pid, stdoutPipe, rep := startWithStdin(t, ln, spec, files[0], files[1:])
	want := map[int]string{0: targets[0], 1: stdoutPipe, 2: "/dev/null", 3: targets[1]}
	got, err := testutil.ProcFDs(pid)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("/proc/%d/fd: %v, want exactly %v", pid, got, want)
	}
	if !slices.Equal(rep.Activation, []string{"web"}) {
		t.Errorf("activation names %q, want [web]", rep.Activation)
	}
}

// The launcher's thread is the children's parent for the kernel's
// parent-death signal: closing the launcher kills them, which is why the
// supervisor closes it only once every service has stopped.
func TestLauncherCloseKillsChildren(t *testing.T) {
	u := testutil.EnsureUser(t, "udsv-a")
	ln, err := privdrop.NewLauncher(1)
	if err != nil {
		t.Fatal(err)
	}
	spec := probeSpec(t, u, 1, "web")
	files, _ := listeners(t, spec.Dir, "web")
	pid, _, _ := startVia(t, ln, spec, files)
	ln.Close()
	done := make(chan syscall.WaitStatus, 1) // the waiter never blocks on us
	go func() {
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
		done <- ws
	}()
	select {
	case ws := <-done:
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Errorf("child ended with %v, want killed by SIGKILL", ws)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("child still alive 10s after the launcher closed")
	}
	l, err := privdrop.Prepare("", spec, files, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Abort()
	if _, err := ln.Start(l); err == nil {
		t.Error("Start after Close succeeded")
	}
}
