package supervisor

import (
	"errors"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/config"
)

// This file is the state machine of a service (the table is in the
// package doc): the handlers of requests, exits, launch steps and timers,
// each run by the service goroutine.

// start is an operator's (or the initial) start: it forgets past
// failures. reply is answered once the launch has told whether the
// command runs, so that the caller sees its pid; a failed launch is no
// error of the start (the status shows it).
func (s *service) start(reply chan error) {
	switch s.st {
	case Starting, Running, Reloading:
		s.answer(reply, nil)
	case Stopping:
		s.startAfterStop = true
		s.answer(reply, nil)
	case Stopped, Waiting, Paused, Exited, Failed, Backoff:
		s.disarm()
		s.failures = 0
		s.spawn()
		s.launchWaiters = append(s.launchWaiters, launchWaiter{reply: reply})
	default:
		s.answer(reply, errInternal(opStart, s.st))
	}
}

// restart answers reply once a new process has been started, as
// systemctl restart does, so that a caller sees the new pid.
func (s *service) restart(reply chan error) {
	switch s.st {
	case Starting, Running, Reloading:
		s.stop(nil) // clears startAfterStop: a plain stop cancels a pending restart
		s.startAfterStop = true
		s.launchWaiters = append(s.launchWaiters, launchWaiter{reply: reply, failed: true})
	case Stopping:
		s.startAfterStop = true
		s.launchWaiters = append(s.launchWaiters, launchWaiter{reply: reply, failed: true})
	default:
		s.start(reply)
	}
}

// stop asks the process to end; reply (if not nil) is answered once no
// process is left.
func (s *service) stop(reply chan error) {
	s.stopTo = Stopped
	switch s.st {
	case Starting, Running, Reloading:
		s.startAfterStop = false
		if reply != nil {
			s.waiters = append(s.waiters, reply)
		}
		s.stopWatch()
		s.disarmWatchdog()
		s.stopIdleWatch()
		s.transition(Stopping)
		// A launch that has not forked yet has no pid to signal; the
		// signal goes out as soon as it has (onLaunchStep).
		if s.pid != 0 {
			s.signalStop()
		}
	case Stopping:
		s.startAfterStop = false
		if reply != nil {
			s.waiters = append(s.waiters, reply)
		}
	case Backoff, Exited, Failed, Stopped, Paused, Waiting:
		s.disarm()
		s.stopDemand()
		if s.st == Backoff || s.st == Paused || s.st == Waiting {
			s.transition(Stopped)
		}
		if reply != nil {
			s.answer(reply, nil)
		}
	default:
		if reply != nil {
			s.answer(reply, errInternal(opStop, s.st))
		}
	}
}

// pause stops the process as stop does, but ends in Paused: the policy
// starts nothing, and connections wait in the backlog until resume.
func (s *service) pause(reply chan error) {
	switch s.st {
	case Starting, Running, Reloading, Stopping:
		s.stop(reply)
		s.stopTo = Paused
	case Backoff, Exited, Failed, Stopped, Waiting:
		s.disarm()
		s.stopDemand()
		s.transition(Paused)
		s.answer(reply, nil)
	case Paused:
		s.answer(reply, nil)
	default:
		s.answer(reply, errInternal(opPause, s.st))
	}
}

// resume starts a paused service, answering once the launch has told
// whether the command runs; a service being paused starts again once
// its process is gone. A service with a process has nothing to resume.
func (s *service) resume(reply chan error) {
	switch s.st {
	case Paused:
		s.activate(reply)
	case Stopping:
		if s.stopTo != Paused {
			s.answer(reply, ErrNotPaused)
			return
		}
		s.startAfterStop = true
		s.answer(reply, nil)
	case Starting, Running, Reloading, Waiting:
		s.answer(reply, nil)
	case Backoff, Exited, Failed, Stopped:
		s.answer(reply, ErrNotPaused)
	default:
		s.answer(reply, errInternal(opResume, s.st))
	}
}

// signalStop sends stop_signal and arms stop_timeout, after which the
// process group is killed.
func (s *service) signalStop() {
	if err := s.reaper.signal(s.pid, s.cfg.StopSignal); err != nil {
		s.log.Warn("stop signal", zap.Error(err))
	}
	s.arm(s.cfg.StopTimeout)
}

func (s *service) onTimer() {
	switch s.st {
	case Starting:
		if s.cfg.Ready == config.ReadyNotify {
			s.log.Error("no READY=1 within start_timeout; killing the process group",
				zap.Int("pid", s.pid), zap.Duration("start_timeout", s.cfg.StartTimeout))
			s.kill()
			return
		}
		s.onStarted("lived min_uptime")
	case Backoff:
		s.spawn()
	case Stopping:
		s.log.Warn("stop timeout passed; killing the process group",
			zap.Int("pid", s.pid), zap.Duration("stop_timeout", s.cfg.StopTimeout))
		s.kill()
	case Running, Reloading, Stopped, Waiting, Paused, Exited, Failed:
		// A timer that fired as it was being replaced; nothing to do.
	default:
		s.log.Error(errInternal("timer", s.st).Error())
	}
}

// onHelperTimeout kills a launch helper that has neither exec'd nor
// reported within helperTimeout (stuck reading its spec, say): its exit
// then ends the launch like any failed start.
func (s *service) onHelperTimeout() {
	s.log.Error("launch helper stuck; killing it", zap.Int("pid", s.pid), zap.Duration("timeout", s.helperTimeout))
	s.kill()
}

// kill SIGKILLs the process group; its exit is handled as usual.
func (s *service) kill() {
	if err := s.reaper.signal(s.pid, unix.SIGKILL); err != nil {
		s.log.Warn("kill", zap.Error(err))
	}
}

func (s *service) onExit(ex Exit) {
	if s.launching {
		// The process ended before its launch reported: handle the end
		// once the report has told why (onLaunchStep).
		s.early = &ex
		return
	}
	if ex.Pid != s.pid {
		s.log.Error("internal error: exit of unknown pid", zap.Int("pid", ex.Pid))
		return
	}
	s.lastExit = &ex
	s.pid, s.mainPid = 0, 0
	s.disarm()
	s.disarmWatchdog()
	s.stopIdleWatch()
	s.stopWatch()
	if s.notify != nil {
		s.notify.close()
		s.notify, s.earlyNotes = nil, nil
	}
	s.mend()
	fields := []zap.Field{zap.Int("pid", ex.Pid), zap.String("status", ex.String()),
		zap.Duration("uptime", ex.Time.Sub(s.startedAt).Round(time.Millisecond))}
	switch s.st {
	case Stopping:
		s.log.Info("stopped", fields...)
		s.onStopped()
	case Running, Reloading:
		// It had started, so this is no failed start: the next
		// process starts at once, however often this happens.
		s.log.Warn("process ended", fields...)
		s.failures = 0
		s.afterExit(ex.Status.Exited() && ex.Status.ExitStatus() == 0)
	case Starting:
		s.log.Warn("process ended before it started", fields...)
		s.failures++
		s.afterExit(ex.Status.Exited() && ex.Status.ExitStatus() == 0)
	default:
		s.log.Error(errInternal("exit", s.st).Error(), fields...)
	}
}

// onStopped ends a stop: no process is left. It answers the stop
// requests, and starts the next process if a restart asked for one.
func (s *service) onStopped() {
	switch {
	case s.startAfterStop:
		s.transition(Stopped) // a restart or resume: stopped for a moment
	case s.stopTo == Waiting:
		s.wait() // stopped for being idle
	default:
		s.transition(s.stopTo)
	}
	for _, w := range s.waiters {
		s.answer(w, nil)
	}
	s.waiters = nil
	var result error
	if s.startAfterStop {
		s.startAfterStop = false
		s.failures = 0
		s.spawn()
	} else {
		result = errors.New("restart cancelled: the service was stopped")
	}
	if result == nil {
		// The restarts are answered once the new launch has told
		// whether the command runs (onLaunchStep).
		return
	}
	s.answerLaunch(result)
}

// answerLaunch answers the requests waiting for a launch: with err for
// a restart, with nil for a start.
func (s *service) answerLaunch(err error) {
	for _, w := range s.launchWaiters {
		if w.failed {
			s.answer(w.reply, err)
		} else {
			s.answer(w.reply, nil)
		}
	}
	s.launchWaiters = nil
}

// onStarted marks the starting process as started: it has shown that it
// works, by reason. From now on its end is not a failed start.
func (s *service) onStarted(reason string) {
	s.stopWatch()
	s.disarm()
	s.failures = 0
	s.log.Info("started", zap.Int("pid", s.pid), zap.String("because", reason))
	s.transition(Running)
	s.armWatchdog()
	s.watchIdle()
}

// stopWatch ends the accept watch, if one runs.
func (s *service) stopWatch() {
	s.watch.stop()
	s.watch, s.acceptC = nil, nil
}

// afterExit applies the restart policy once the process is gone;
// s.failures counts the consecutive processes that ended before they
// started, this one included.
func (s *service) afterExit(clean bool) {
	switch {
	case !restarts(s.cfg.Restart, clean):
		s.transition(Exited)
	case s.cfg.StartLimit > 0 && s.failures >= s.cfg.StartLimit:
		s.log.Error("start limit reached; giving up until started again",
			zap.Int("failures", s.failures))
		s.transition(Failed)
	default:
		d := backoffDelay(s.failures)
		switch {
		case d == 0 && s.cfg.Start == config.StartOnDemand:
			s.wait() // the next connection starts the next process
			return
		case d == 0:
			s.spawn()
			return
		}
		s.log.Info("restart scheduled", zap.Duration("in", d), zap.Int("failures", s.failures))
		s.transition(Backoff)
		s.arm(d)
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

// spawn starts a new process: it launches the helper on a goroutine of
// its own (launch.go), whose steps come back to onLaunchStep. The
// sockets are not touched: they stay bound and listening in udsvisor, so
// connections queue in the kernel backlog until the new process accepts
// them (only a socket that the last process shut down was replaced, by
// mend).
func (s *service) spawn() {
	if s.started {
		s.restarts++
	}
	s.started = true
	s.stopDemand()
	files := s.files()
	// The watch begins before the launch, so that connections that
	// queued for this process are seen waiting before it can take any;
	// begun after, it could miss a process that accepts at once. A
	// notify service has started when it says so.
	if s.cfg.Ready != config.ReadyNotify {
		s.watch = watchAccept(files, s.cfg.MinUptime)
	}
	s.launching, s.pid, s.startedAt, s.statusText = true, 0, time.Time{}, ""
	s.transition(Starting)
	go s.launch(s.cfg, files)
}

// onLaunchStep takes a report of the launch in flight: the fork (a pid,
// or why there is none), then whether the helper exec'd the command.
func (s *service) onLaunchStep(step launchStep) {
	switch {
	case step.forked && step.err != nil:
		s.launching = false
		s.startFailed(step.err)
		s.stopWatch()
		// Nothing runs, so no exit will come: count it here.
		s.onNoProcess()
	case step.forked:
		s.pid, s.startedAt, s.notify = step.pid, time.Now(), step.notify
		s.helperTimer = time.NewTimer(s.helperTimeout)
		s.helperTimerC = s.helperTimer.C
		if s.st == Stopping {
			s.signalStop()
		}
	default:
		s.launching = false
		if s.helperTimer != nil { // nil once it fired
			s.helperTimer.Stop()
		}
		s.helperTimer, s.helperTimerC = nil, nil
		if step.err != nil {
			// The helper exits 127; onExit counts the failed start.
			s.startFailed(step.err)
		} else {
			s.lastErr = ""
			s.publish() // the pid is shown from here; published, then logged
			s.log.Info("spawned", zap.Int("pid", s.pid))
			switch {
			case s.st != Starting:
			case s.cfg.Ready == config.ReadyNotify:
				s.arm(s.cfg.StartTimeout)
			default:
				// Started by whichever comes first: the first accept,
				// or MinUptime.
				s.arm(s.cfg.MinUptime)
				if s.watch != nil {
					s.acceptC = s.watch.C
				}
			}
		}
		if s.st == Starting {
			// Starts and restarts wait for this launch; while
			// stopping, they wait for the launch after the stop.
			s.answerLaunch(step.err)
		}
		notes := s.earlyNotes
		s.earlyNotes = nil
		for _, m := range notes {
			s.onNotify(m)
		}
		if ex := s.early; ex != nil {
			s.early = nil
			s.onExit(*ex)
		}
	}
}

func (s *service) startFailed(err error) {
	s.lastErr = err.Error()
	s.log.Error("start failed", zap.Error(err))
}

// onNoProcess applies the restart policy to a launch that created no
// process. A service that could not even start has failed, whatever its
// restart policy.
func (s *service) onNoProcess() {
	s.pid = 0
	switch s.st {
	case Stopping:
		s.onStopped()
		return
	case Starting:
	default:
		s.log.Error(errInternal("failed launch", s.st).Error())
		return
	}
	s.failures++
	s.answerLaunch(errors.New(s.lastErr))
	if s.cfg.Restart == config.RestartNever {
		s.transition(Failed)
		return
	}
	s.transition(Backoff)
	s.afterExit(false)
}

// transition is the one place a service's state changes.
func (s *service) transition(to State) {
	if to == s.st {
		return
	}
	from := s.st
	s.st = to
	s.since = time.Now()
	// Published before it is logged, so that whoever reads the log line
	// and then the status sees the new state.
	s.publish()
	s.log.Info("state", zap.String("from", string(from)), zap.String("to", string(to)), zap.Int("pid", s.pid))
}
