// SPDX-License-Identifier: Apache-2.0

//go:build linux

package proc

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tree is a shell started by Start with two sleeps below it: away in a
// session of its own (as a supervisor's service may be), near in the
// shell's process group. Each sleep is held by a pidfd, which becomes
// readable when it ends, whoever reaps it.
type tree struct {
	c          *Child
	away, near int // pidfds
}

func startTree(t *testing.T) tree {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Each sleep says its pid once it is where it belongs (setsid has
	// made its session), then becomes sleep under the same pid.
	script := `echo started
setsid sh -c 'echo away $$ >&3; exec sleep 300' &
sh -c 'echo near $$ >&3; exec sleep 300' &
wait`
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.ExtraFiles = []*os.File{w}
	c, err := Start("tree", filepath.Join(t.TempDir(), "log"), cmd)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Kill() })
	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	fds := map[string]int{}
	sc := bufio.NewScanner(r)
	for len(fds) < 2 && sc.Scan() {
		name, pid, _ := strings.Cut(sc.Text(), " ")
		n, err := strconv.Atoi(pid)
		if err != nil {
			t.Fatal(err)
		}
		// The sleep cannot have ended: nothing signals it yet.
		fd, err := unix.PidfdOpen(n, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			// Whatever the test left running: the subreaper (the test
			// process, see Start) reaps it; for another's child Waitid
			// says ECHILD at once.
			unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			unix.Waitid(unix.P_PIDFD, fd, nil, unix.WEXITED, nil)
			unix.Close(fd)
		})
		fds[name] = fd
	}
	if len(fds) < 2 {
		t.Fatalf("the shell named %d sleeps (%v); log: %s", len(fds), sc.Err(), c.LogTail(200))
	}
	return tree{c: c, away: fds["away"], near: fds["near"]}
}

// ends reports whether the process of pidfd ends within d.
func ends(t *testing.T, pidfd int, d time.Duration) bool {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, int(d/time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestKillEndsTheTree(t *testing.T) {
	tr := startTree(t)
	if err := tr.c.Exited(); err != nil {
		t.Fatalf("running child: %v", err)
	}
	if err := tr.c.Kill(); err != nil {
		t.Fatal(err)
	}
	// Kill returns once all are reaped: nothing to wait for.
	if !ends(t, tr.away, 0) || !ends(t, tr.near, 0) {
		t.Error("a sleep survived Kill")
	}
	err := tr.c.Exited()
	if err == nil || !strings.Contains(err.Error(), "tree exited (signal: killed); its log ends: started") {
		t.Errorf("Exited = %v, want the cause and the log", err)
	}
	if err := tr.c.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}
}

func TestStopEndsTheGroup(t *testing.T) {
	tr := startTree(t)
	if err := tr.c.Stop(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if tr.c.Exited() == nil {
		t.Error("the shell survived Stop")
	}
	// SIGKILL was sent to the group, but near may take a moment to die.
	if !ends(t, tr.near, 5*time.Second) {
		t.Error("a sleep in the group survived Stop")
	}
	// Stop reaches only the group; what left it is Kill's (at cleanup).
	if ends(t, tr.away, 0) {
		t.Error("Stop reached a process outside the group")
	}
}
