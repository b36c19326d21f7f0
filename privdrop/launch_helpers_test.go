// SPDX-License-Identifier: Apache-2.0

//go:build linux

package privdrop_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/privdrop"
)

// started is a launched probe.
type started struct {
	cmd        *exec.Cmd
	stdout     *bufio.Reader
	stdoutPipe string // "pipe:[ino]", the probe's fd 1 as /proc shows it
	stderr     *os.File
}

// launchOpts adjusts one launch.
type launchOpts struct {
	mutate func(*exec.Cmd) // applied to l.Cmd() before Start
	// inheritCaps forks with CAP_NET_BIND_SERVICE in the forking
	// thread's inheritable and ambient sets, which the helper inherits.
	inheritCaps bool
	noStderr    bool // pass a nil stderr
	// deny, when set, forks from a thread whose seccomp filter makes
	// one syscall fail (see startFiltered).
	deny *denial
}

// launch runs the probe through Prepare, Start and AfterStart, the way
// the supervisor does, and returns AfterStart's error. The process is
// killed and reaped when the test ends.
func launch(t *testing.T, spec *privdrop.Spec, files []*os.File, o launchOpts) (*started, error) {
	t.Helper()
	r, w := blockingPipe(t)
	s := &started{stdout: bufio.NewReader(r)}
	var err error
	if s.stdoutPipe, err = os.Readlink(fmt.Sprintf("/proc/self/fd/%d", r.Fd())); err != nil {
		t.Fatal(err)
	}
	if !o.noStderr {
		if s.stderr, err = os.CreateTemp(t.TempDir(), "stderr"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.stderr.Close() })
	}
	l, err := privdrop.Prepare("", spec, files, w, s.stderr)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if o.mutate != nil {
		o.mutate(l.Cmd())
	}
	s.cmd = l.Cmd()
	start := func() error { return startLocked(l.Cmd(), nil, o.inheritCaps) }
	if o.deny != nil {
		start = func() error { return startFiltered(t, l.Cmd(), *o.deny) }
	}
	if err := start(); err != nil {
		l.Abort()
		return nil, err
	}
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	})
	w.Close() // the child has its copy; EOF on r then means it is gone

	// AfterStart waits for EOF on the error pipe; if a regression let
	// the pipe reach the command, it would wait for ever. The bound only
	// turns that hang into a failure; a launch takes milliseconds.
	done := make(chan error, 1) // buffered: the sender never waits for us
	go func() { done <- l.AfterStart() }()
	select {
	case err := <-done:
		return s, err
	case <-time.After(afterStartBound):
		s.cmd.Process.Kill()
		t.Fatalf("AfterStart did not return within %v: does the command hold the error pipe?", afterStartBound)
		return nil, nil
	}
}

// afterStartBound is how long launch lets AfterStart run before it calls
// the launch hung.
const afterStartBound = 20 * time.Second

// startLocked starts cmd from a locked thread, as the supervisor must
// (Pdeathsig), with the given signals blocked on that thread and, if
// asked, an inheritable and ambient capability raised on it.
func startLocked(cmd *exec.Cmd, block []unix.Signal, inheritCaps bool) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if inheritCaps {
		restore, err := raiseAmbient(unix.CAP_NET_BIND_SERVICE)
		if err != nil {
			return err
		}
		defer restore()
	}
	var set, old unix.Sigset_t
	for _, sig := range block {
		set.Val[(sig-1)/64] |= 1 << ((sig - 1) % 64)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old); err != nil {
		return err
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	return cmd.Start()
}

// raiseAmbient adds capability c to this thread's inheritable and ambient
// sets (capabilities are per thread); restore undoes it.
func raiseAmbient(c int) (restore func(), err error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var old [2]unix.CapUserData
	if err := unix.Capget(&hdr, &old[0]); err != nil {
		return nil, fmt.Errorf("capget: %w", err)
	}
	raised := old
	raised[c/32].Inheritable |= 1 << (c % 32)
	if err := unix.Capset(&hdr, &raised[0]); err != nil {
		return nil, fmt.Errorf("capset: %w", err)
	}
	restore = func() {
		unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
		unix.Capset(&hdr, &old[0])
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
		restore()
		return nil, fmt.Errorf("raise ambient capability %d: %w", c, err)
	}
	return restore, nil
}

// readReport reads the probe's JSON line.
func readReport(t *testing.T, rd *bufio.Reader, stderr *os.File) report {
	t.Helper()
	line, err := rd.ReadBytes('\n')
	if err != nil {
		t.Fatalf("read probe report: %v (stderr: %s)", err, fileText(stderr))
	}
	var rep report
	if err := json.Unmarshal(line, &rep); err != nil {
		t.Fatalf("decode probe report %q: %v", line, err)
	}
	if rep.Err != "" {
		t.Fatalf("probe: %s", rep.Err)
	}
	return rep
}

func fileText(f *os.File) string {
	if f == nil {
		return ""
	}
	b, _ := os.ReadFile(f.Name())
	return string(b)
}

// mustStart launches and reads the report, failing on any error.
func mustStart(t *testing.T, spec *privdrop.Spec, files []*os.File, o launchOpts) (*started, report) {
	t.Helper()
	s, err := launch(t, spec, files, o)
	if s == nil {
		t.Fatalf("start: %v", err)
	}
	if err != nil {
		t.Fatalf("AfterStart: %v (stderr: %s)", err, fileText(s.stderr))
	}
	rep := readReport(t, s.stdout, s.stderr)
	if rep.PID != s.cmd.Process.Pid {
		t.Fatalf("probe pid %d, started pid %d", rep.PID, s.cmd.Process.Pid)
	}
	return s, rep
}

// leakFDs opens two fds that are not close-on-exec until the test ends:
// syscall.Open sets no O_CLOEXEC, nor does dup2. One lands at a low
// number, the other at 100, well above 3+n.
func leakFDs(t *testing.T) {
	t.Helper()
	low, err := syscall.Open("/etc/hostname", syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(low) })
	const high = 100
	if err := unix.Dup2(low, high); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(high) })
}
