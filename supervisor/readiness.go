package supervisor

import (
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// The readiness side of the state machine (ready = "notify"): what a
// process says on its NOTIFY_SOCKET (notify.go reads it), and the
// watchdog.

// maxEarlyNotes bounds the messages kept while a launch is in flight.
const maxEarlyNotes = 16

// onNotify takes a message the process sent on its NOTIFY_SOCKET.
func (s *service) onNotify(m notifyMsg) {
	if m.from != s.notify {
		return // from a process that has ended
	}
	if s.launching {
		if len(s.earlyNotes) < maxEarlyNotes {
			s.earlyNotes = append(s.earlyNotes, m)
		}
		return
	}
	if m.status != nil {
		s.statusText = *m.status
	}
	if m.mainPid != 0 {
		// Only a process udsvisor can stop with the group may speak for
		// the service; the one it started stays the one it waits for.
		if pgid, err := unix.Getpgid(m.mainPid); err == nil && pgid == s.pid {
			s.mainPid = m.mainPid
		} else {
			s.log.Warn("MAINPID outside the service's process group ignored", zap.Int("mainpid", m.mainPid))
		}
	}
	if m.extend > 0 && s.timer != nil && (s.st == Starting || s.st == Stopping) && time.Until(s.timerAt) < m.extend {
		s.arm(m.extend)
	}
	if m.stopping {
		s.log.Info("process says it is stopping", zap.Int("pid", m.pid))
	}
	if m.reloading && s.st == Running {
		s.transition(Reloading)
	}
	if m.ready {
		switch s.st {
		case Starting:
			s.onStarted("sent READY=1")
		case Reloading:
			s.transition(Running)
		}
	}
	if m.watchdog && s.watchdog != nil {
		s.armWatchdog()
	}
	if m.trigger {
		s.onWatchdog("WATCHDOG=trigger")
	}
}

// armWatchdog (re)starts the watchdog of a started notify process.
func (s *service) armWatchdog() {
	s.disarmWatchdog()
	if s.cfg.Watchdog > 0 {
		s.watchdog = time.NewTimer(s.cfg.Watchdog)
		s.watchdogC = s.watchdog.C
	}
}

func (s *service) disarmWatchdog() {
	if s.watchdog != nil {
		s.watchdog.Stop()
	}
	s.watchdog, s.watchdogC = nil, nil
}

// onWatchdog kills a process that missed its watchdog: its exit restarts
// it like any crash.
func (s *service) onWatchdog(reason string) {
	switch s.st {
	case Starting, Running, Reloading:
		s.log.Error("watchdog: "+reason+"; killing the process group",
			zap.Int("pid", s.pid), zap.Duration("watchdog", s.cfg.Watchdog))
		s.disarmWatchdog()
		s.kill()
	}
}
