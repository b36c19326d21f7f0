// SPDX-License-Identifier: Apache-2.0

//go:build linux

package privdrop_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
	"github.com/udsvisor/udsvisor/privdrop"
)

// startViaParent runs this test binary as a stand-in supervisor (see
// parentRole) that launches spec, and returns it with the probe's report.
// With a non-nil tty, the stand-in runs in its own session with tty as
// its controlling terminal, the way an operator starts udsvisor; hostile
// spoils its signal state (envParentHostile).
func startViaParent(t *testing.T, spec *privdrop.Spec, tty *os.File, hostile bool) (*exec.Cmd, report) {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r, w := blockingPipe(t)
	stderr, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	parent := exec.Command(exe)
	parent.Env = append(os.Environ(), envParentRole+"="+string(b))
	if hostile {
		parent.Env = append(parent.Env, envParentHostile+"=1")
	}
	parent.Stdout = w
	parent.Stderr = stderr
	if tty != nil {
		parent.Stdin = tty
		parent.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		parent.Process.Kill()
		parent.Wait()
	})
	w.Close()
	return parent, readReport(t, bufio.NewReader(r), stderr)
}

// openPty returns the terminal side of a new pseudo-terminal; the master
// stays open until the test ends so that the terminal does not hang up.
func openPty(t *testing.T) *os.File {
	t.Helper()
	m, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		testutil.Unavailable(t, "open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { unix.Close(m) })
	if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(m, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	s, err := os.OpenFile(name, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestT13Session checks that the command gets a session of its own without a
// controlling terminal, even when its supervisor has one (T13).
func TestT13Session(t *testing.T) {
	u := testutil.EnsureUser(t, "udsv-a")
	parent, rep := startViaParent(t, probeSpec(t, u, 0, ""), openPty(t), false)

	ps := readStat(t, parent.Process.Pid)
	if ps.ttyNr == 0 {
		t.Fatalf("test setup: the stand-in supervisor has no controlling tty")
	}
	cs := readStat(t, rep.PID)
	if cs.session != rep.PID || cs.pgrp != rep.PID {
		t.Errorf("session %d, process group %d; want both %d (setsid)", cs.session, cs.pgrp, rep.PID)
	}
	if cs.session == ps.session {
		t.Errorf("command shares the supervisor's session %d", ps.session)
	}
	if cs.ttyNr != 0 {
		t.Errorf("tty_nr %#x, want 0", cs.ttyNr)
	}
	if want := unix.ENXIO.Error(); rep.TTY != want {
		t.Errorf("open /dev/tty in the command: %q, want %q", rep.TTY, want)
	}
}

// TestParentDeath checks that SIGKILLing the supervisor kills the
// command: the parent-death signal set at fork is cleared by the uid
// change, so this fails unless the helper re-arms it.
func TestParentDeath(t *testing.T) {
	u := testutil.EnsureUser(t, "udsv-a")
	// The orphaned command is reparented to us, so we can reap it and
	// read how it died.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })

	parent, rep := startViaParent(t, probeSpec(t, u, 0, ""), nil, false)
	pidfd, err := unix.PidfdOpen(rep.PID, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	t.Cleanup(func() {
		// Only does something when the test failed.
		unix.Kill(rep.PID, unix.SIGKILL)
		unix.Wait4(rep.PID, nil, 0, nil)
	})

	if err := parent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	parent.Wait()

	// A pidfd turns readable when its process exits. The timeout is
	// only a bound on a failing test; the kernel kills at once.
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 30_000)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("command %d still runs 30s after its supervisor was killed", rep.PID)
		}
		break
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(rep.PID, &ws, 0, nil); err != nil {
		t.Fatalf("reap command %d: %v", rep.PID, err)
	}
	if !ws.Signaled() || ws.Signal() != unix.SIGKILL {
		t.Errorf("command ended with %#x, want killed by SIGKILL", ws)
	}
}

// TestT15Signals checks that SigIgn and SigBlk are empty in the command even
// when its supervisor ignores SIGHUP, SIGPIPE and SIGTSTP (SIG_IGN
// survives exec, T15) and forks with SIGTERM blocked. The helper has no
// runtime that would install handlers: it resets every disposition itself.
func TestT15Signals(t *testing.T) {
	u := testutil.EnsureUser(t, "udsv-a")
	parent, rep := startViaParent(t, probeSpec(t, u, 0, ""), nil, true)

	const hupPipeTstp = 1<<(syscall.SIGHUP-1) | 1<<(syscall.SIGPIPE-1) | 1<<(syscall.SIGTSTP-1)
	if ign := sigMask(t, status(t, parent.Process.Pid)["SigIgn"]); ign&hupPipeTstp != hupPipeTstp {
		t.Fatalf("test setup: the stand-in supervisor's SigIgn is %#x", ign)
	}
	st := status(t, rep.PID)
	if st["SigIgn"] != zeroCaps {
		t.Errorf("SigIgn: %s, want %s", st["SigIgn"], zeroCaps)
	}
	if st["SigBlk"] != zeroCaps {
		t.Errorf("SigBlk: %s, want %s", st["SigBlk"], zeroCaps)
	}
}

func sigMask(t *testing.T, hex string) uint64 {
	t.Helper()
	m, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		t.Fatalf("parse signal mask %q: %v", hex, err)
	}
	return m
}
