// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/proctree"
)

// Exit is how a service's main process ended.
type Exit struct {
	Pid    int
	Status unix.WaitStatus
	Time   time.Time
}

// String reads like "exited with status 1" or "killed by SIGKILL".
func (e Exit) String() string {
	switch {
	case e.Status.Exited():
		return fmt.Sprintf("exited with status %d", e.Status.ExitStatus())
	case e.Status.Signaled():
		return "killed by " + unix.SignalName(e.Status.Signal())
	default:
		return fmt.Sprintf("ended with wait status %#x", uint32(e.Status))
	}
}

// reaper is the one place that waits for child processes. Every service
// child is registered before start returns, and its exit is delivered to
// the function given at start. No other code calls wait: a second waiter
// steals statuses (ECHILD), a known bug of reapers next to os/exec.
//
// Before a registered child is reaped, what is left of its process group
// is SIGKILLed: while the zombie exists its pid, and so its pgid, cannot
// be reused, so the kill can never hit a stranger (T23). For the same
// reason signal only reaches a child that has not been reaped yet.
type reaper struct {
	log *zap.Logger
	// reapOrphans is set when udsvisor is a subreaper or PID 1, so that
	// grandchildren reparented to it are reaped too. In tests that share
	// the process with os/exec users it stays off.
	reapOrphans bool

	mu    sync.Mutex
	procs map[int]func(Exit) // guarded by mu; registered, unreaped pids
	// starting counts starts whose child may exist but is not yet in
	// procs; while it is not zero an unregistered exit may be one of
	// theirs and is left unreaped. Guarded by mu.
	starting int
	// kick makes run look again once a start has registered its child.
	// Capacity 1: one pending kick means "look again", like SIGCHLD.
	kick chan struct{}
	// orphanReaped wakes killOrphans when an orphan was reaped.
	// Capacity 1: one pending wake means "count again".
	orphanReaped chan struct{}
	// frozen stops all reaping while an upgrade hands the children
	// over: their ends stay as zombies for the next program. Guarded
	// by mu.
	frozen bool
}

// newReaper returns a reaper; call run to make it reap.
func newReaper(log *zap.Logger, reapOrphans bool) *reaper {
	return &reaper{log: log, reapOrphans: reapOrphans, procs: make(map[int]func(Exit)),
		kick: make(chan struct{}, 1), orphanReaped: make(chan struct{}, 1)}
}

// run reaps on every SIGCHLD until ctx is done.
func (r *reaper) run(ctx context.Context) {
	// Capacity 1 is enough: one pending SIGCHLD means "look again", and
	// reap collects every waitable child each time.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, unix.SIGCHLD)
	defer signal.Stop(sigc)
	r.reap() // children that exited before Notify
	for {
		select {
		case <-ctx.Done():
			return
		case <-sigc:
			r.reap()
		case <-r.kick:
			r.reap()
		}
	}
}

// start calls start, which forks a child and returns its pid, and
// registers the pid; deliver receives its Exit, under the reaper's lock,
// and must not block.
//
// starts run in parallel, without a lock around the fork: while a start
// is in flight, the reaper leaves unregistered exits alone (a child that
// died before its registration stays a zombie, its pid and pgid pinned)
// and looks again once the start has registered it.
func (r *reaper) start(start func() (int, error), deliver func(Exit)) (int, error) {
	r.mu.Lock()
	r.starting++
	r.mu.Unlock()

	pid, err := start()

	r.mu.Lock()
	r.starting--
	if err == nil {
		r.procs[pid] = deliver
	}
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default: // a look is already pending
	}
	return pid, err
}

// signal sends sig to the process group of the registered child pid.
// It fails with ErrNotRunning once the child has been reaped, so a
// signal never reaches a reused pid.
func (r *reaper) signal(pid int, sig unix.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.procs[pid]; !ok || pid <= 1 {
		return ErrNotRunning
	}
	// The child called setsid, so its pgid is its pid.
	if err := unix.Kill(-pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill -%s -%d: %w", unix.SignalName(sig), pid, err)
	}
	return nil
}

// freeze stops reaping until thaw.
func (r *reaper) freeze() {
	r.mu.Lock()
	r.frozen = true
	r.mu.Unlock()
}

func (r *reaper) thaw() {
	r.mu.Lock()
	r.frozen = false
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default: // a look is already pending
	}
}

// adopt registers pid, a child that an upgrade handed over, as start
// would have; call it before run.
func (r *reaper) adopt(pid int, deliver func(Exit)) {
	r.mu.Lock()
	r.procs[pid] = deliver
	r.mu.Unlock()
}

// pids returns the registered pids, for the final sweep at shutdown.
func (r *reaper) pids() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	pids := make([]int, 0, len(r.procs))
	for pid := range r.procs {
		pids = append(pids, pid)
	}
	return pids
}

func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for !r.frozen {
		pid, err := peekExited()
		if err != nil || pid == 0 {
			break
		}
		if _, ok := r.procs[pid]; ok {
			r.collect(pid)
			continue
		}
		if !r.reapOrphans || r.starting > 0 {
			// Someone else's child (a test's os/exec), or one of a
			// start in flight, not registered yet: leave it and look
			// at ours one by one. start kicks the reaper afterwards.
			r.scanRegistered()
			return
		}
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil {
			r.log.Debug("reaped orphan", zap.Int("pid", pid), zap.String("status", Exit{Pid: pid, Status: ws}.String()))
			select {
			case r.orphanReaped <- struct{}{}:
			default: // a wake is already pending
			}
		}
	}
}

// scanRegistered collects registered children one by one; used when a
// foreign child hides ours from the P_ALL peek.
func (r *reaper) scanRegistered() {
	for pid := range r.procs {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if err == nil && siginfoPid(&info) == pid {
			r.collect(pid)
		}
	}
}

// collect kills the rest of pid's group while the zombie still holds the
// pgid, then reaps pid and delivers its Exit. Called with mu held.
func (r *reaper) collect(pid int) {
	// A grandchild left in the group dies with the service.
	_ = unix.Kill(-pid, unix.SIGKILL)
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		r.log.Error("wait4", zap.Int("pid", pid), zap.Error(err))
	}
	deliver := r.procs[pid]
	delete(r.procs, pid)
	deliver(Exit{Pid: pid, Status: ws, Time: time.Now()})
}

// peekExited returns the pid of an exited child without reaping it, or 0.
func peekExited() (int, error) {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	if err != nil {
		return 0, err
	}
	return siginfoPid(&info), nil
}

// siginfoPid reads si_pid, which x/sys's Siginfo keeps in an unexported
// union: after three ints, aligned to a pointer (as in the kernel's
// siginfo_t), first field of _sigchld. It is 0 when WNOHANG found nothing.
func siginfoPid(info *unix.Siginfo) int {
	off := (3*unsafe.Sizeof(int32(0)) + unsafe.Sizeof(uintptr(0)) - 1) &^ (unsafe.Sizeof(uintptr(0)) - 1)
	return int(*(*int32)(unsafe.Add(unsafe.Pointer(info), off)))
}

// killOrphans SIGKILLs every child of udsvisor that is not a registered
// service process: grandchildren that escaped their service's process
// group (double fork and setsid) and were reparented to udsvisor, the
// subreaper. Process groups cannot hold such processes; only a cgroup
// could. It waits up to timeout for them to be reaped and returns how many
// it killed. Used at shutdown, after every service has stopped.
func (r *reaper) killOrphans(timeout time.Duration) int {
	killed := 0
	r.mu.Lock()
	for _, pid := range proctree.Children(os.Getpid()) {
		if _, registered := r.procs[pid]; registered {
			continue
		}
		// Still our unreaped child (so its pid cannot have been reused)?
		// The reaper reaps only under mu, which we hold.
		var info unix.Siginfo
		if unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil) != nil {
			continue
		}
		if unix.Kill(pid, unix.SIGKILL) == nil {
			killed++
			r.log.Warn("killing a process that escaped its service's process group", zap.Int("pid", pid))
		}
	}
	r.mu.Unlock()
	if killed == 0 {
		return 0
	}
	// The reaper collects them on SIGCHLD and wakes us for each.
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for len(proctree.Children(os.Getpid())) > len(r.pids()) {
		select {
		case <-r.orphanReaped:
		case <-deadline.C:
			return killed
		}
	}
	return killed
}
