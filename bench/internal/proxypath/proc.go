package proxypath

import (
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// proc is a long-running child of this part (udsvisor up, the TCP
// backend, nginx), started in a process group of its own: Ctrl-C on the
// terminal then reaches only bench, which cancels its context and stops
// the children in order, and the group can be killed whole (nginx's
// workers with their master).
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{} // closed once Wait returned; err is set then
	err  error
}

// startProc starts cmd with its output kept in a bounded buffer.
func startProc(name string, cmd *exec.Cmd) (*proc, error) {
	p := &proc{name: name, cmd: cmd, out: &tailBuffer{max: 64 << 10}, done: make(chan struct{})}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	// If bench itself is killed, its children go with it instead of
	// holding sockets and ports. (Linux ties this to the thread that
	// forked; Go ends a thread only when a locked goroutine exits, which
	// this package never does.)
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.Stdout, cmd.Stderr = p.out, p.out
	// nginx's workers inherit the output pipe; Wait must not hang on
	// them if the master is gone.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, and then its exit error
// (nil for status 0).
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// exitError describes a process that ended when it should not have.
func (p *proc) exitError(err error) error {
	return fmt.Errorf("%s exited: %v; its output:\n%s", p.name, err, p.out.String())
}

// stop sends sig to the process group, waits up to grace for the process,
// then kills the group. The group is killed in any case, so that no
// straggler (an nginx worker whose master died) outlives this part; a
// group id stays reserved while any member lives, so this reaches only
// our processes. It returns an error if the process had to be killed.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) error {
	pgid := p.cmd.Process.Pid
	var errs []error
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		errs = append(errs, fmt.Errorf("signal %s: %w", p.name, err))
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		errs = append(errs, fmt.Errorf("%s did not stop within %v of %v; killed", p.name, grace, sig))
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		errs = append(errs, fmt.Errorf("kill %s: %w", p.name, err))
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		errs = append(errs, fmt.Errorf("%s (pid %d) survived SIGKILL for 5s", p.name, pgid))
	}
	return errors.Join(errs...)
}

// tailBuffer keeps the last max bytes written to it: enough to explain a
// failure, bounded however much a child writes.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
