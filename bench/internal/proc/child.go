// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Package proc starts the benchmark's long-running children (the
// supervisors, nginx, the proxy path's backends) and ends them, and reads
// from /proc what the figures need: process trees, CPU time and PSS.
// Every part of the benchmark starts and ends its children here, so
// that all of them get the same process group, parent-death signal and
// cleanup.
package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Child is a long-running program the benchmark started (a supervisor,
// nginx, a backend), with everything it starts in turn.
type Child struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once cmd.Wait returned
	err  error         // cmd.Wait's answer, once done is closed
	once sync.Once     // Kill runs once
}

var subreaper sync.Once

// Start starts cmd with its output appended to the file logPath; name
// stands for it in errors. cmd's SysProcAttr, if set, is kept and
// completed:
//
//   - The child runs in a process group of its own, so that a Ctrl-C at
//     the terminal reaches only the benchmark, which cancels its context
//     and stops its children in order, and so that Stop can signal the
//     group whole (nginx's workers with their master).
//   - It gets SIGKILL if the benchmark itself dies, instead of holding
//     sockets and ports. Linux ties that signal to the thread that
//     forked; Go ends a thread only when a locked goroutine exits, which
//     the benchmark never does.
//
// The first Start makes the benchmark a child subreaper: what a killed
// child leaves behind is reparented to the benchmark, which reaps it in
// Kill, instead of to PID 1, which in containers and some VMs never
// reaps, so that thousands of zombies would pile up run after run.
func Start(name, logPath string, cmd *exec.Cmd) (*Child, error) {
	subreaper.Do(func() {
		// Best effort: without it, only the reaping of orphans is lost.
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	})
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	// The child has its own copy once started; a file rather than a pipe
	// also means Wait never waits for grandchildren holding it open.
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &Child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// Pid is the child's pid, which is also its process group's id.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Exited returns an error saying how the child ended, with the end of
// its log, once it has ended; nil while it runs.
func (c *Child) Exited() error {
	select {
	case <-c.done:
		how := "status 0"
		if c.err != nil {
			how = c.err.Error()
		}
		return fmt.Errorf("%s exited (%s); its log ends: %s", c.name, how, c.LogTail(1000))
	default:
		return nil
	}
}

// LogTail returns the last n bytes of the child's log, on one line.
func (c *Child) LogTail(n int64) string {
	f, err := os.Open(c.log)
	if err != nil {
		return "(no log)"
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "(no log)"
	}
	off := max(st.Size()-n, 0)
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil {
		return "(unreadable log)"
	}
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", " | ")
}

// Stop ends a child that cleans up after itself (udsvisor removing its
// sockets, nginx its workers): it sends sig to the process group, waits
// up to grace for the child, then kills the group. The group is killed
// in any case, so that no straggler (an nginx worker whose master died)
// outlives the part; a group id stays reserved while any member lives,
// so this reaches only the benchmark's processes. It returns an error if
// the child had to be killed.
func (c *Child) Stop(sig syscall.Signal, grace time.Duration) error {
	pgid := c.Pid()
	var errs []error
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		errs = append(errs, fmt.Errorf("signal %s: %w", c.name, err))
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		errs = append(errs, fmt.Errorf("%s did not stop within %v of %v; killed", c.name, grace, sig))
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		errs = append(errs, fmt.Errorf("kill %s: %w", c.name, err))
	}
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		errs = append(errs, fmt.Errorf("%s (pid %d) survived SIGKILL for 5s", c.name, pgid))
	}
	return errors.Join(errs...)
}

// Kill ends the child and everything below it (a supervisor's whole
// tree, whatever process groups its services moved to), then reaps them
// all. Each round stops (SIGSTOP)
// every process of the tree not stopped yet, so that none can fork or
// restart another while the tree is read, and reads the tree again,
// until a round finds nothing new; then all get SIGKILL at once. Safe to
// call more than once.
func (c *Child) Kill() error {
	var err error
	c.once.Do(func() { err = c.kill() })
	return err
}

func (c *Child) kill() error {
	root := c.Pid()
	stopped := map[int]bool{}
	for round := 0; round < 50; round++ {
		fresh := 0
		pids := []int{root}
		for _, d := range Descendants(root, nil) {
			pids = append(pids, d.Pid)
		}
		for _, pid := range pids {
			if !stopped[pid] {
				_ = unix.Kill(pid, unix.SIGSTOP) // a process gone since the walk is no error
				stopped[pid] = true
				fresh++
			}
		}
		if fresh == 0 {
			break
		}
	}
	for pid := range stopped {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("kill %s: pid %d still not dead after 10 s", c.name, root)
	}
	delete(stopped, root) // reaped by cmd.Wait
	return reap(stopped, 10*time.Second)
}

// reap waits for the killed processes that were reparented to the
// benchmark (the subreaper) as their parents died. A pid that is not
// the benchmark's child and no longer exists was reaped by its own
// parent; one that still exists waits for its parent to die. Each of
// these changes sends the benchmark a SIGCHLD (an exit of its child, or
// a zombie reparented to it), which is when reap looks again.
func reap(pids map[int]bool, limit time.Duration) error {
	// Capacity 1: SIGCHLDs coalesce anyway, and one pending is enough to
	// look again at every pid.
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, unix.SIGCHLD)
	defer signal.Stop(sigchld)
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		for pid := range pids {
			var ws unix.WaitStatus
			got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			switch {
			case got == pid:
				delete(pids, pid)
			case errors.Is(err, unix.ECHILD):
				if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
					delete(pids, pid)
				}
			}
		}
		if len(pids) == 0 {
			return nil
		}
		select {
		case <-sigchld:
		case <-deadline.C:
			return fmt.Errorf("%d killed processes not reaped after %v", len(pids), limit)
		}
	}
}
