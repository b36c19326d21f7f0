package peer

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Proc is a long-running program the benchmark started (a supervisor,
// nginx) with everything it starts in turn.
type Proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once cmd.Wait returned
	err  error         // cmd.Wait's answer, once done is closed
	once sync.Once
}

var subreaper sync.Once

// Spawn starts argv with its output in the file logPath. It runs in a
// process group of its own, so a Ctrl-C at the terminal reaches the
// benchmark (which then stops it) and not the supervisor directly, and
// it gets SIGKILL if the benchmark itself dies (the kernel ties that
// signal to the forking thread, and Go ends no thread of its own while
// the benchmark runs).
//
// The first Spawn makes the benchmark a child subreaper: what a killed
// supervisor leaves behind is reparented to the benchmark, which reaps
// it in Kill, instead of to PID 1, which in containers and some VMs
// never reaps, so that thousands of zombies would pile up run after run.
func Spawn(logPath string, env []string, argv ...string) (*Proc, error) {
	subreaper.Do(func() {
		// Best effort: without it, only the reaping of orphans is lost.
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
		raiseNofile()
	})
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("spawn %s: %w", argv[0], err)
	}
	defer log.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("spawn %s: %w", argv[0], err)
	}
	p := &Proc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// raiseNofile sets the benchmark's soft limit of open files to its hard
// limit, which every supervisor then inherits: at 1,000 services each
// needs thousands of fds (sockets, pipes, log files), and a service
// manager would be configured so; Debian's default soft limit is 1024.
// (Go raises its own soft limit at start but gives children the
// original one, unless the program sets the limit itself, as here.)
func raiseNofile() {
	var l unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &l)
	}
}

// Pid is the process's pid.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited returns an error saying how the process ended, with the end of
// its log, once it has ended; nil while it runs.
func (p *Proc) Exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v); its log ends: %s", p.cmd.Path, p.err, p.LogTail(600))
	default:
		return nil
	}
}

// LogTail returns the last n bytes of the process's log, on one line.
func (p *Proc) LogTail(n int64) string {
	f, err := os.Open(p.log)
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

// Kill ends the process and everything below it, then reaps them all.
// Each round stops (SIGSTOP) every process of the tree not stopped yet,
// so that none can fork or restart another while the tree is read, and
// reads the tree again, until a round finds nothing new; then all get
// SIGKILL at once. Safe to call more than once.
func (p *Proc) Kill() error {
	var err error
	p.once.Do(func() { err = p.kill() })
	return err
}

func (p *Proc) kill() error {
	root := p.Pid()
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
	case <-p.done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("kill %s: pid %d still not dead after 10 s", p.cmd.Path, root)
	}
	delete(stopped, root) // reaped by cmd.Wait
	return reap(stopped, 10*time.Second)
}

// reap waits for the killed processes that were reparented to the
// benchmark (the subreaper) as their parents died. A pid that is not
// the benchmark's child and no longer exists was reaped by its own
// parent; one that still exists waits for its parent to die.
func reap(pids map[int]bool, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for len(pids) > 0 && time.Now().Before(deadline) {
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
		if len(pids) > 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if len(pids) > 0 {
		return fmt.Errorf("%d killed processes not reaped after %v", len(pids), limit)
	}
	return nil
}
