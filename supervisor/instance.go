// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"slices"
	"time"

	"go.uber.org/zap"
)

// instance is one of a service's processes, index i of its instances
// (UDSVISOR_INSTANCE=i), supervised on its own: its own state, restart
// policy, readiness and timers. It belongs to the service goroutine; its
// watches and timers post their events to the service's inbox.
type instance struct {
	index     int
	log       svcLog
	st        State
	since     time.Time
	pid       int
	startedAt time.Time
	mainPid   int
	restarts  int
	failures  int
	started   bool // a first process was started (for counting restarts)
	lastExit  *Exit
	lastErr   string
	// launching is set from spawn until the launch has reported its
	// last step; early holds an exit of its process that came first, to
	// be handled once the launch has told how it went; earlyNotes are
	// the messages that came meanwhile.
	launching  bool
	early      *Exit
	earlyNotes []notifyMsg
	// notify is the process's NOTIFY_SOCKET (ready = "notify"), nil
	// otherwise; statusText its last STATUS=.
	notify     *notifySocket
	statusText string
	// killedFor says why udsvisor killed the starting process (its
	// start_timeout), for the error of a failed start.
	killedFor string
	// old marks an instance that an overlapping restart replaces, and
	// removing one that scale down stops: stopped and never restarted,
	// dropped once the process is gone.
	old, removing bool
	// timers: each fires by posting a timerFired carrying its kind and
	// the seq it was armed with; a fire with an older seq is stale.
	timers  [numTimers]*time.Timer
	seq     [numTimers]int
	timerAt time.Time // when the main timer fires
	// watch looks for the starting process's first accept; watchSeq
	// tells its event from an earlier watch's. tookConn is set when the
	// connection was taken while the launch had not yet reported.
	watch    *acceptWatch
	watchSeq int
	tookConn bool
	// inherited are the socket inodes of the listeners the process was
	// started with (warnOwnListeners).
	inherited map[uint64]bool
}

// The timers of an instance.
const (
	// timerMain drives min_uptime or start_timeout, the back-off delay
	// and stop_timeout.
	timerMain = iota
	// timerHelper bounds the launch helper's work.
	timerHelper
	// timerWatchdog is the WATCHDOG=1 deadline.
	timerWatchdog
	numTimers
)

// timerFired is a timer of an instance that went off.
type timerFired struct {
	inst *instance
	kind int
	seq  int
}

// accepted is an accept watch that saw its connection taken.
type accepted struct {
	inst *instance
	seq  int
}

func (s *service) newInstance(i int) *instance {
	log := s.log
	if s.cfg.Instances > 1 || i > 0 {
		log = log.instance(i)
	}
	return &instance{index: i, log: log, st: Stopped, since: time.Now()}
}

// hasStarted reports whether the instance's process has started and
// serves.
func (inst *instance) hasStarted() bool { return inst.st == Running || inst.st == Reloading }

// leaving reports whether the instance is on its way out.
func (inst *instance) leaving() bool { return inst.old || inst.removing }

// hasProcess reports whether the instance has a process, or a launch in
// flight that will give it one.
func (inst *instance) hasProcess() bool { return inst.pid != 0 || inst.launching }

// arm (re)starts a timer; its fire reaches onTimerFired unless disarmed
// or re-armed first.
func (inst *instance) arm(s *service, kind int, d time.Duration) {
	inst.disarm(kind)
	inst.seq[kind]++
	ev := timerFired{inst: inst, kind: kind, seq: inst.seq[kind]}
	inst.timers[kind] = time.AfterFunc(d, func() { s.inbox.post(ev) })
	if kind == timerMain {
		inst.timerAt = time.Now().Add(d)
	}
}

func (inst *instance) disarm(kind int) {
	if inst.timers[kind] != nil {
		inst.timers[kind].Stop()
		inst.timers[kind] = nil
		inst.seq[kind]++ // a fire already posted is stale
	}
}

func (inst *instance) armed(kind int) bool { return inst.timers[kind] != nil }

func (inst *instance) onTimerFired(s *service, ev timerFired) {
	if ev.seq != inst.seq[ev.kind] {
		return // disarmed or re-armed since
	}
	inst.timers[ev.kind] = nil
	switch ev.kind {
	case timerMain:
		inst.onTimer(s)
	case timerHelper:
		inst.log.Error("launch helper stuck; killing it", zap.Int("pid", inst.pid), zap.Duration("timeout", s.helperTimeout))
		inst.kill(s)
	case timerWatchdog:
		inst.onWatchdog(s, "no WATCHDOG=1 within watchdog")
	}
}

// transition is the one place an instance's state changes.
func (inst *instance) transition(s *service, to State) {
	if to == inst.st {
		return
	}
	from := inst.st
	inst.st = to
	inst.since = time.Now()
	// Published before it is logged, so that whoever reads the log line
	// and then the status sees the new state.
	s.publish()
	inst.log.Info("state", zap.String("from", string(from)), zap.String("to", string(to)), zap.Int("pid", inst.pid))
}

// status is the instance as callers see it.
func (inst *instance) status() InstanceStatus {
	st := InstanceStatus{
		Index: inst.index, State: inst.st, Since: inst.since, Restarts: inst.restarts,
		Failures: inst.failures, LastError: inst.lastErr, StatusText: inst.statusText, Leaving: inst.leaving(),
	}
	// A process is shown once it runs the command: until then it is the
	// launch helper, which no caller may signal.
	if !inst.launching {
		st.Pid, st.StartedAt, st.MainPid = inst.pid, inst.startedAt, inst.mainPid
	}
	if inst.lastExit != nil {
		ex := *inst.lastExit
		st.LastExit = &ex
	}
	return st
}

// statePriority orders the states an aggregate may show: the service is
// in the best state that one of its instances is in, so that it shows
// running while any instance serves.
var statePriority = []State{Running, Reloading, Starting, Stopping, Backoff, Failed, Exited, Stopped}

// better reports whether a service in state a is shown rather than in b:
// a comes first in statePriority (a state not in it comes last).
func better(a, b State) bool {
	rank := func(st State) int {
		if i := slices.Index(statePriority, st); i >= 0 {
			return i
		}
		return len(statePriority)
	}
	return rank(a) < rank(b)
}

// state is the service's state: its rest state (stopped, waiting,
// paused) when it is not active and no instance has a process, else the
// best of its instances'.
func (s *service) state() State {
	if (!s.active && !s.busy()) || len(s.insts) == 0 {
		return s.rest
	}
	best := s.insts[0].st
	for _, inst := range s.insts[1:] {
		if better(inst.st, best) {
			best = inst.st
		}
	}
	return best
}

func (s *service) status() Status {
	st := Status{
		Name: s.cfg.Name, State: s.state(), Sockets: s.cfg.Sockets, Wanted: s.want,
		Instances: make([]InstanceStatus, 0, len(s.insts)),
	}
	var last *Exit
	for _, inst := range s.insts {
		is := inst.status()
		st.Instances = append(st.Instances, is)
		st.Restarts += is.Restarts
		st.Failures = max(st.Failures, is.Failures)
		if st.Pid == 0 && is.Pid != 0 && !is.Leaving {
			st.Pid, st.StartedAt, st.MainPid, st.StatusText = is.Pid, is.StartedAt, is.MainPid, is.StatusText
		}
		if is.LastError != "" {
			st.LastError = is.LastError
		}
		if is.LastExit != nil && (last == nil || is.LastExit.Time.After(last.Time)) {
			last = is.LastExit
		}
	}
	st.LastExit = last
	if st.StatusText == "" && len(s.insts) > 0 {
		st.StatusText = s.insts[0].statusText
	}
	return st
}
