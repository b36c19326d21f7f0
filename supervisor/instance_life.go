// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"slices"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/config"
)

// This file is the side of the state machine that belongs to one
// instance: its launch, its start, its end and its restart policy. Each
// handler runs on the service goroutine and tells the service
// (lifecycle.go) what concerns all instances.

// spawn starts a new process: it launches the helper on a goroutine of
// its own (launch.go), whose steps come back to onLaunchStep. The
// sockets are not touched: they stay bound and listening in udsvisor, so
// connections queue in the kernel backlog until the new process accepts
// them (only a socket that the last process shut down was replaced, by
// mend).
func (inst *instance) spawn(s *service) {
	if inst.started {
		inst.restarts++
	}
	inst.started = true
	files := s.files()
	// The sockets this process gets, by inode, for the check of its own
	// listeners: taken here, where no rebind can race it.
	inst.inherited = socketInodes(files)
	// The watch begins before the launch, so that connections that
	// queued for this process are seen waiting before it can take any;
	// begun after, it could miss a process that accepts at once. A
	// notify service has started when it says so, and a drained queue
	// proves nothing while another process may have drained it.
	inst.stopWatch()
	if s.cfg.Ready != config.ReadyNotify && !s.othersMayAccept(inst) {
		ev := accepted{inst: inst, seq: inst.watchSeq}
		inst.watch = watchAccept(files, s.cfg.MinUptime, func() { s.inbox.post(ev) })
	}
	inst.launching, inst.tookConn = true, false
	inst.pid, inst.startedAt, inst.statusText = 0, time.Time{}, ""
	inst.transition(s, Starting)
	go s.launch(inst, s.cfg, files)
}

// othersMayAccept reports whether a process other than inst's may take
// connections from the service's sockets: another instance's, one that an
// overlapping restart replaces (they are all in s.insts), or the old
// definition's during a reload's overlap.
func (s *service) othersMayAccept(inst *instance) bool {
	if s.replacing.Load() != nil {
		return true
	}
	return slices.ContainsFunc(s.insts, func(o *instance) bool { return o != inst && o.hasProcess() })
}

// stop asks the process to end and reports whether there is one (or a
// launch) to wait for.
func (inst *instance) stop(s *service) bool {
	switch inst.st {
	case Starting, Running, Reloading:
		inst.stopWatch()
		inst.disarm(timerWatchdog)
		inst.transition(s, Stopping)
		// A launch that has not forked yet has no pid to signal; the
		// signal goes out as soon as it has (onLaunchStep).
		if inst.pid != 0 {
			inst.signalStop(s)
		}
		return true
	case Stopping:
		return true
	case Backoff:
		inst.disarm(timerMain)
		inst.transition(s, Stopped)
	default:
		inst.disarm(timerMain)
	}
	return false
}

// signalStop sends stop_signal and arms stop_timeout, after which the
// process group is killed.
func (inst *instance) signalStop(s *service) {
	if err := s.reaper.signal(inst.pid, s.cfg.StopSignal); err != nil {
		inst.log.Warn("stop signal", zap.Error(err))
	}
	inst.arm(s, timerMain, s.cfg.StopTimeout)
}

// kill SIGKILLs the process group; its exit is handled as usual.
func (inst *instance) kill(s *service) {
	if err := s.reaper.signal(inst.pid, unix.SIGKILL); err != nil {
		inst.log.Warn("kill", zap.Error(err))
	}
}

func (inst *instance) onTimer(s *service) {
	switch inst.st {
	case Starting:
		if s.cfg.Ready == config.ReadyNotify {
			inst.log.Error("no READY=1 within start_timeout; killing the process group",
				zap.Int("pid", inst.pid), zap.Duration("start_timeout", s.cfg.StartTimeout))
			inst.killedFor = "no READY=1 within start_timeout " + s.cfg.StartTimeout.String()
			inst.kill(s)
			return
		}
		inst.onStarted(s, "lived min_uptime")
	case Backoff:
		if inst.leaving() || !s.active {
			// Replaced or scaled away, or the service stopped meanwhile.
			inst.gone(s)
			return
		}
		inst.spawn(s)
	case Stopping:
		inst.log.Warn("stop timeout passed; killing the process group",
			zap.Int("pid", inst.pid), zap.Duration("stop_timeout", s.cfg.StopTimeout))
		inst.kill(s)
	}
}

// onAccepted is told by the accept watch that the process took a
// connection: the sign that it serves.
func (inst *instance) onAccepted(s *service, ev accepted) {
	if ev.seq != inst.watchSeq {
		return // a watch of an earlier process
	}
	inst.stopWatch()
	switch {
	case inst.launching:
		inst.tookConn = true // counted once the launch has told it exec'd
	case inst.st == Starting:
		inst.onStarted(s, "accepted a connection")
	}
}

func (inst *instance) stopWatch() {
	inst.watch.stop()
	inst.watch = nil
	inst.watchSeq++
}

// onLaunchStep takes a report of the launch in flight: the fork (a pid,
// or why there is none), then whether the helper exec'd the command.
func (inst *instance) onLaunchStep(s *service, step launchStep) {
	switch {
	case step.forked && step.err != nil:
		inst.launching = false
		inst.startFailed(step.err)
		inst.stopWatch()
		// Nothing runs, so no exit will come: count it here.
		inst.onNoProcess(s)
		s.launchDone(step.err)
	case step.forked:
		inst.pid, inst.startedAt, inst.notify = step.pid, time.Now(), step.notify
		inst.arm(s, timerHelper, s.helperTimeout)
		if inst.st == Stopping {
			inst.signalStop(s)
		}
	default:
		inst.launching = false
		inst.disarm(timerHelper)
		if step.err != nil {
			// The helper exits 127; onExit counts the failed start.
			inst.startFailed(step.err)
		} else {
			inst.lastErr = ""
			s.publish() // the pid is shown from here; published, then logged
			inst.log.Info("spawned", zap.Int("pid", inst.pid))
			switch {
			case inst.st != Starting:
			case s.cfg.Ready == config.ReadyNotify:
				inst.arm(s, timerMain, s.cfg.StartTimeout)
			case inst.tookConn:
				inst.onStarted(s, "accepted a connection")
			default:
				// Started by whichever comes first: the first accept,
				// or MinUptime.
				inst.arm(s, timerMain, s.cfg.MinUptime)
			}
		}
		s.launchDone(step.err)
		notes := inst.earlyNotes
		inst.earlyNotes = nil
		for _, m := range notes {
			inst.onNotify(s, m)
		}
		if ex := inst.early; ex != nil {
			inst.early = nil
			inst.onExit(s, *ex)
		}
	}
}

func (inst *instance) startFailed(err error) {
	inst.lastErr = err.Error()
	inst.log.Error("start failed", zap.Error(err))
}

// gone rests the instance, whose process is gone with no successor, and
// tells the service.
func (inst *instance) gone(s *service) {
	inst.transition(s, Stopped)
	s.onInstanceGone(inst)
}

// onNoProcess applies the restart policy to a launch that created no
// process. An instance that could not even start has failed, whatever
// its restart policy.
func (inst *instance) onNoProcess(s *service) {
	inst.pid = 0
	switch inst.st {
	case Stopping:
		inst.gone(s)
		return
	case Starting:
	default:
		inst.log.Error(errInternal("failed launch", inst.st).Error())
		return
	}
	inst.failures++
	s.onFailedStart(inst, inst.lastErr)
	switch {
	case inst.leaving():
		inst.gone(s)
	case s.cfg.Restart == config.RestartNever:
		inst.transition(s, Failed)
	default:
		inst.transition(s, Backoff)
		inst.afterExit(s, false)
	}
}

func (inst *instance) onExit(s *service, ex Exit) {
	if !inst.launching && ex.Pid != inst.pid {
		inst.log.Error("internal error: exit of another pid", zap.Int("pid", ex.Pid), zap.Int("current", inst.pid))
		return
	}
	if inst.launching {
		// The process ended before its launch reported: handle the end
		// once the report has told why (onLaunchStep).
		inst.early = &ex
		return
	}
	inst.lastExit = &ex
	inst.pid, inst.mainPid, inst.statusText = 0, 0, ""
	defer func() { inst.killedFor = "" }()
	inst.disarm(timerMain)
	inst.disarm(timerWatchdog)
	inst.stopWatch()
	if inst.notify != nil {
		inst.notify.close()
		inst.notify, inst.earlyNotes = nil, nil
	}
	s.mend()
	fields := []zap.Field{zap.Int("pid", ex.Pid), zap.String("status", ex.String()),
		zap.Duration("uptime", ex.Time.Sub(inst.startedAt).Round(time.Millisecond))}
	switch inst.st {
	case Stopping:
		inst.log.Info("stopped", fields...)
		inst.gone(s)
	case Running, Reloading:
		// It had started, so this is no failed start: the next
		// process starts at once, however often this happens.
		inst.log.Warn("process ended", fields...)
		inst.failures = 0
		if inst.leaving() {
			inst.gone(s)
			return
		}
		inst.afterExit(s, ex.Status.Exited() && ex.Status.ExitStatus() == 0)
	case Starting:
		inst.log.Warn("process ended before it started", fields...)
		inst.failures++
		why := ex.String()
		if inst.killedFor != "" {
			why = inst.killedFor
		}
		s.onFailedStart(inst, why)
		if inst.leaving() {
			inst.gone(s)
			return
		}
		inst.afterExit(s, ex.Status.Exited() && ex.Status.ExitStatus() == 0)
	default:
		inst.log.Error(errInternal("exit", inst.st).Error(), fields...)
	}
}

// onStarted marks the starting process as started: it has shown that it
// works, by reason. From now on its end is not a failed start.
func (inst *instance) onStarted(s *service, reason string) {
	inst.stopWatch()
	inst.disarm(timerMain)
	inst.failures = 0
	inst.log.Info("started", zap.Int("pid", inst.pid), zap.String("because", reason))
	if s.cfg.Relay == nil {
		// A relay's app listens on its port by design, in a network
		// namespace nothing else can reach.
		warnOwnListeners(inst.log, inst.pid, inst.inherited)
	}
	inst.transition(s, Running)
	inst.armWatchdog(s)
	s.onInstanceStarted(inst)
}

// afterExit applies the restart policy once the process is gone, cleanly
// (exit status 0) or not; inst.failures counts the consecutive processes
// that ended before they started, this one included.
func (inst *instance) afterExit(s *service, clean bool) {
	switch {
	case !restarts(s.cfg.Restart, clean):
		// A new process of an overlapping restart that ends for good
		// has not started: the old ones keep serving.
		s.onFailedStart(inst, "the process ended for good (restart = "+string(s.cfg.Restart)+")")
		if inst.leaving() {
			inst.gone(s)
			return
		}
		inst.transition(s, Exited)
	case s.cfg.StartLimit > 0 && inst.failures >= s.cfg.StartLimit:
		inst.log.Error("start limit reached; giving up until started again",
			zap.Int("failures", inst.failures))
		inst.transition(s, Failed)
	default:
		d := backoffDelay(inst.failures)
		switch {
		case d == 0 && s.cfg.Start == config.StartOnDemand && inst.failures == 0 && !s.busy():
			// It had started: the next connection starts the next
			// process. (A failed start is retried, with back-off, or
			// a command that exits at once would spin on a waiting
			// connection.)
			inst.transition(s, Stopped)
			s.active = false
			s.wait()
		case d == 0:
			inst.spawn(s)
		default:
			inst.log.Info("restart scheduled", zap.Duration("in", d), zap.Int("failures", inst.failures))
			inst.transition(s, Backoff)
			inst.arm(s, timerMain, d)
		}
	}
}

// restarts reports whether policy wants a new process after one that
// ended, cleanly (exit status 0) or not.
func restarts(policy config.Restart, clean bool) bool {
	switch policy {
	case config.RestartAlways:
		return true
	case config.RestartOnFailure:
		return !clean
	default: // config.RestartNever
		return false
	}
}
