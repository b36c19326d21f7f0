// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"errors"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/udsvisor/udsvisor/config"
)

// This file is the service side of the state machine (the table is in
// the package doc): the requests that act on every instance, and what
// the service does when its instances start or end. instance_life.go is
// the side of one instance.

// busy reports whether an instance has a process (or a launch in
// flight).
func (s *service) busy() bool {
	return slices.ContainsFunc(s.insts, (*instance).hasProcess)
}

// setRest records where an inactive service without processes rests
// (stopped, waiting, paused), logged as a state change.
func (s *service) setRest(to State) {
	from := s.state()
	s.rest = to
	if from != s.state() {
		s.publish()
		s.log.Info("state", zap.String("from", string(from)), zap.String("to", string(s.state())), zap.Int("pid", 0))
	}
}

// start is an operator's (or the initial) start: every instance without
// a process gets one, forgetting past failures. reply is answered once
// each launch has told whether the command runs, so that the caller sees
// the pids; a failed launch is no error of the start (the status shows
// it).
func (s *service) start(reply chan error) {
	if s.stopping {
		s.startAfterStop = true
		s.answer(reply, nil)
		return
	}
	if !s.startInstances(true) {
		s.answer(reply, nil)
		return
	}
	s.launchWaiters = append(s.launchWaiters, launchWaiter{reply: reply})
}

// startInstances makes the service active and gives every current
// instance without a process one, forgetting its failed starts if
// forget (an operator's start does; a connection that starts an
// on-demand service does not, or a command that exits at once would be
// started again for every connection, never reaching start_limit). It
// reports whether it spawned any.
func (s *service) startInstances(forget bool) bool {
	s.stopDemand()
	s.active = true
	spawned := false
	for _, inst := range s.current() {
		switch inst.st {
		case Stopped, Exited, Failed, Backoff:
			inst.disarm(timerMain)
			if forget {
				inst.failures = 0
			}
			inst.spawn(s)
			spawned = true
		}
	}
	return spawned
}

// restart replaces the processes: stop, then start (connections wait in
// the backlog meanwhile), or with restart_mode = "overlap" start the new
// ones beside the old. reply is answered once the new processes run the
// command (overlap: once they have started), as systemctl restart does.
func (s *service) restart(reply chan error) {
	switch {
	case s.overlap != nil:
		s.overlap.waiters = append(s.overlap.waiters, reply) // one is on its way
	case s.cfg.RestartMode == config.RestartOverlap && !s.stopping && s.serving():
		s.restartOverlap(reply)
	case s.stopping:
		s.startAfterStop = true
		s.launchWaiters = append(s.launchWaiters, launchWaiter{reply: reply, failed: true})
	case s.busy():
		s.stop(nil, Stopped)
		s.startAfterStop = true
		s.launchWaiters = append(s.launchWaiters, launchWaiter{reply: reply, failed: true})
	default:
		s.start(reply)
	}
}

// serving reports whether a current instance has started and serves;
// allStarted whether every one has.
func (s *service) serving() bool {
	return slices.ContainsFunc(s.current(), (*instance).hasStarted)
}

func (s *service) allStarted() bool {
	return !slices.ContainsFunc(s.current(), func(i *instance) bool { return !i.hasStarted() })
}

// stop asks every process to end (stop_signal, SIGKILL after
// stop_timeout); reply (if not nil) is answered once none is left. The
// service then rests in to: stopped, paused or waiting.
func (s *service) stop(reply chan error, to State) {
	s.active, s.startAfterStop, s.activateAfterStop, s.stopTo = false, false, false, to
	s.stopIdleWatch()
	s.stopDemand()
	if s.overlap != nil {
		s.endOverlap(errors.New("restart cancelled: the service was stopped"))
	}
	for _, w := range s.startedWaiters {
		s.answer(w, errStoppedBeforeStart)
	}
	s.startedWaiters = nil
	busy := false
	for _, inst := range slices.Clone(s.insts) {
		if inst.stop(s) {
			busy = true
		} else if inst.leaving() {
			s.drop(inst)
		}
	}
	if reply != nil {
		s.waiters = append(s.waiters, reply)
	}
	if busy {
		s.stopping = true
		return
	}
	s.onAllStopped()
}

// pause stops the processes as stop does, but the service rests paused:
// the policy starts nothing, and connections wait in the backlog until
// resume.
func (s *service) pause(reply chan error) {
	s.stop(reply, Paused)
}

// resume starts a paused service, answering once the launches have told
// whether the command runs; a service being paused starts again once its
// processes are gone. A service that is running (or waiting) has nothing
// to resume.
func (s *service) resume(reply chan error) {
	switch {
	case s.stopping && s.stopTo == Paused:
		s.activateAfterStop = true
		s.answer(reply, nil)
	case !s.stopping && !s.active && s.rest == Paused:
		s.activate(reply)
	case s.busy() || (!s.active && s.rest == Waiting):
		s.answer(reply, nil) // running, or waiting for a connection
	default:
		s.answer(reply, ErrNotPaused)
	}
}

// onAllStopped ends a stop: no process is left. It answers the stop
// requests and starts the processes again if a restart asked for it.
func (s *service) onAllStopped() {
	s.stopping = false
	// The state is settled before the stop requests are answered, so
	// that their callers see where the service rests.
	restarting := s.startAfterStop || s.activateAfterStop
	switch {
	case s.activateAfterStop && s.cfg.Start == config.StartOnDemand:
		s.wait() // a resume of an on-demand service waits again
		restarting = false
	case restarting:
		s.setRest(Stopped) // a restart or resume: stopped for a moment
		s.startInstances(true)
	case s.stopTo == Waiting:
		s.wait() // stopped for being idle
	default:
		s.setRest(s.stopTo)
	}
	s.startAfterStop, s.activateAfterStop = false, false
	for _, w := range s.waiters {
		s.answer(w, nil)
	}
	s.waiters = nil
	if restarting {
		// The restarts are answered once the launches have told
		// whether the command runs (launchDone).
		return
	}
	s.answerLaunch(errors.New("restart cancelled: the service was stopped"))
}

// launchDone is told of each launch's end (err: why it failed); once no
// current instance is launching, the start and restart requests are
// answered. While a stop is in progress they wait for the launches after
// it.
func (s *service) launchDone(err error) {
	if err != nil && s.launchErr == nil {
		s.launchErr = err
	}
	if s.stopping || slices.ContainsFunc(s.insts, func(i *instance) bool { return i.launching && !i.leaving() }) {
		return
	}
	err, s.launchErr = s.launchErr, nil
	s.answerLaunch(err)
}

// answerLaunch answers the requests waiting for a launch: with err for
// a restart, with nil for a start.
func (s *service) answerLaunch(err error) {
	s.launchErr = nil
	for _, w := range s.launchWaiters {
		if w.failed {
			s.answer(w.reply, err)
		} else {
			s.answer(w.reply, nil)
		}
	}
	s.launchWaiters = nil
}

// onInstanceGone is told that an instance's process is gone without a
// successor: it drops an instance on its way out and ends a stop when
// no process is left.
func (s *service) onInstanceGone(inst *instance) {
	if inst.leaving() {
		s.drop(inst)
	}
	if s.stopping && !s.busy() {
		s.onAllStopped()
	}
}

// stopOrDrop stops an instance on its way out, or drops it now if it has
// no process to wait for.
func (s *service) stopOrDrop(inst *instance) {
	if !inst.stop(s) {
		s.drop(inst)
	}
}

// drop removes an instance on its way out and answers the scale
// requests once no such instance is left.
func (s *service) drop(inst *instance) {
	s.insts = slices.DeleteFunc(s.insts, func(i *instance) bool { return i == inst })
	if !slices.ContainsFunc(s.insts, func(i *instance) bool { return i.removing }) {
		for _, w := range s.scaleWaiters {
			s.answer(w, nil)
		}
		s.scaleWaiters = nil
	}
}

// onInstanceStarted is told that an instance has started: it may end an
// overlapping restart and answer those waiting for the start.
func (s *service) onInstanceStarted(inst *instance) {
	if inst.leaving() {
		return
	}
	s.watchIdle()
	if !s.allStarted() {
		return
	}
	if s.overlap != nil {
		s.log.Info("the new processes have started; stopping the old ones")
		for _, old := range slices.Clone(s.insts) {
			if old.old {
				s.stopOrDrop(old)
			}
		}
		s.endOverlap(nil)
	}
	for _, w := range s.startedWaiters {
		s.answer(w, nil)
	}
	s.startedWaiters = nil
}

// onFailedStart is told that a current instance's process ended before
// it started, or could not be made: an overlapping restart is abandoned
// (the old processes keep serving), and those waiting for the start hear
// of it.
func (s *service) onFailedStart(inst *instance, why string) {
	if inst.leaving() {
		return
	}
	err := fmt.Errorf("%w (%s)", ErrStartFailed, why)
	if s.overlap != nil {
		s.log.Error("overlapping restart failed; the old processes keep serving", zap.String("why", why))
		var failed []*instance
		for _, i := range s.current() {
			i.removing = true
			failed = append(failed, i)
		}
		// The replaced instances are current again (those still
		// there: one that ended meanwhile was dropped), in index order.
		var back []*instance
		for _, i := range s.overlap.replaced {
			if slices.Contains(s.insts, i) {
				i.old = false
				back = append(back, i)
			}
		}
		s.insts = append(back, slices.DeleteFunc(s.insts, func(i *instance) bool { return slices.Contains(back, i) })...)
		for _, i := range failed {
			switch {
			case i == inst:
				// Its process is gone already: dropped before the
				// restart is answered, so that its caller sees the old
				// processes alone.
				i.transition(s, Stopped)
				s.drop(i)
			default:
				s.stopOrDrop(i)
			}
		}
		s.endOverlap(fmt.Errorf("%w; the old processes keep serving", err))
		s.fillIndexes()
	}
	for _, w := range s.startedWaiters {
		s.answer(w, err)
	}
	s.startedWaiters = nil
}

// overlapRestart is an overlapping restart in progress: the instances it
// replaces, and the requests to answer once the new processes have
// started (or failed to).
type overlapRestart struct {
	replaced []*instance
	waiters  []chan error
}

// restartOverlap starts a new generation of processes beside the old
// ones, which are stopped once every new one has started
// (onInstanceStarted); a new one that fails to start ends the new
// generation and leaves the old serving (onFailedStart).
func (s *service) restartOverlap(reply chan error) {
	if s.overlap != nil {
		s.overlap.waiters = append(s.overlap.waiters, reply)
		return
	}
	s.log.Info("overlapping restart: starting new processes beside the old ones")
	var fresh, replaced []*instance
	for _, inst := range s.insts {
		if !inst.leaving() {
			inst.old = true
			replaced = append(replaced, inst)
			next := s.newInstance(inst.index)
			// The new generation keeps counting its index's restarts.
			next.restarts, next.started = inst.restarts, true
			fresh = append(fresh, next)
		}
	}
	s.insts = append(fresh, s.insts...)
	s.overlap = &overlapRestart{replaced: replaced, waiters: []chan error{reply}}
	for _, inst := range fresh {
		inst.spawn(s)
	}
}

// fillIndexes gives every index below want an instance again, starting it
// if the service is active: one that ended during an overlap was dropped
// with the generation it belonged to.
func (s *service) fillIndexes() {
	cur := s.current()
	have := make(map[int]bool, len(cur))
	for _, i := range cur {
		have[i.index] = true
	}
	var added []*instance
	for i := range s.want {
		if !have[i] {
			added = append(added, s.newInstance(i))
		}
	}
	if len(added) == 0 {
		return
	}
	cur = append(cur, added...)
	slices.SortFunc(cur, func(a, b *instance) int { return a.index - b.index })
	s.insts = append(cur, s.leavingOnes()...)
	if s.active && !s.stopping {
		for _, i := range added {
			i.spawn(s)
		}
	}
}

func (s *service) endOverlap(err error) {
	for _, w := range s.overlap.waiters {
		s.answer(w, err)
	}
	s.overlap = nil
}

// awaitStarted answers reply once every current instance has started,
// or with the first failed start.
func (s *service) awaitStarted(reply chan error) {
	if !s.active && !s.busy() && s.rest == Waiting {
		s.answer(reply, nil) // on demand: the next connection starts it
		return
	}
	if !s.active && !s.busy() {
		s.answer(reply, errStoppedBeforeStart) // stopped or paused meanwhile
		return
	}
	if s.serving() && s.allStarted() {
		s.answer(reply, nil)
		return
	}
	s.startedWaiters = append(s.startedWaiters, reply)
}

// scale sets the number of instances: new ones start at once if the
// service is active; the highest indexes beyond n are stopped
// gracefully and dropped once their processes are gone, which reply
// waits for (an increase waits for the new launches, as start does).
func (s *service) scale(n int, reply chan error) {
	if n < 1 || n > config.MaxInstances {
		s.answer(reply, fmt.Errorf("%w: %d is not 1 to %d", ErrBadScale, n, config.MaxInstances))
		return
	}
	cur := s.current()
	s.want = n
	switch {
	case n > len(cur):
		var added []*instance
		for i := len(cur); i < n; i++ {
			added = append(added, s.newInstance(i))
		}
		s.insts = append(append(cur, added...), s.leavingOnes()...)
		if !s.active || s.stopping {
			s.answer(reply, nil)
			return
		}
		for _, inst := range added {
			inst.spawn(s)
		}
		s.launchWaiters = append(s.launchWaiters, launchWaiter{reply: reply})
	case n < len(cur):
		for _, inst := range cur[n:] {
			inst.removing = true
			s.stopOrDrop(inst)
		}
		if slices.ContainsFunc(s.insts, func(i *instance) bool { return i.removing }) {
			s.scaleWaiters = append(s.scaleWaiters, reply)
			return
		}
		s.answer(reply, nil)
	default:
		s.answer(reply, nil)
	}
}

func (s *service) leavingOnes() []*instance {
	var out []*instance
	for _, inst := range s.insts {
		if inst.leaving() {
			out = append(out, inst)
		}
	}
	return out
}
