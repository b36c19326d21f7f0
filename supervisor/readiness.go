// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// The readiness side of an instance (ready = "notify"): what its process
// says on its NOTIFY_SOCKET (notify.go reads it), and the watchdog.

// maxEarlyNotes bounds the messages kept while a launch is in flight.
const maxEarlyNotes = 16

// onNotify takes a message the process sent on its NOTIFY_SOCKET.
func (inst *instance) onNotify(s *service, m notifyMsg) {
	if inst.launching {
		if len(inst.earlyNotes) < maxEarlyNotes {
			inst.earlyNotes = append(inst.earlyNotes, m)
		}
		return
	}
	if m.from != inst.notify {
		return // from a process that has ended
	}
	if m.status != nil {
		inst.statusText = *m.status
	}
	if m.mainPid != 0 {
		// Only a process udsvisor can stop with the group may speak for
		// the service; the one it started stays the one it waits for.
		if pgid, err := unix.Getpgid(m.mainPid); err == nil && pgid == inst.pid {
			inst.mainPid = m.mainPid
		} else {
			inst.log.Warn("MAINPID outside the service's process group ignored", zap.Int("mainpid", m.mainPid))
		}
	}
	if m.extend > 0 && inst.armed(timerMain) && (inst.st == Starting || inst.st == Stopping) && time.Until(inst.timerAt) < m.extend {
		inst.arm(s, timerMain, m.extend)
	}
	if m.stopping {
		inst.log.Info("process says it is stopping", zap.Int("pid", m.pid))
	}
	if m.reloading && inst.st == Running {
		inst.transition(s, Reloading)
	}
	if m.ready {
		switch inst.st {
		case Starting:
			inst.onStarted(s, "sent READY=1")
		case Reloading:
			inst.transition(s, Running)
		}
	}
	if m.watchdog && inst.armed(timerWatchdog) {
		inst.armWatchdog(s)
	}
	if m.trigger {
		inst.onWatchdog(s, "WATCHDOG=trigger")
	}
}

// armWatchdog (re)starts the watchdog of a started notify process.
func (inst *instance) armWatchdog(s *service) {
	if s.cfg.Watchdog > 0 {
		inst.arm(s, timerWatchdog, s.cfg.Watchdog)
	}
}

// onWatchdog kills a process that missed its watchdog: its exit restarts
// it like any crash.
func (inst *instance) onWatchdog(s *service, reason string) {
	switch inst.st {
	case Starting, Running, Reloading:
		inst.log.Error("watchdog: "+reason+"; killing the process group",
			zap.Int("pid", inst.pid), zap.Duration("watchdog", s.cfg.Watchdog))
		inst.disarm(timerWatchdog)
		inst.kill(s)
	}
}
