// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"time"

	"go.uber.org/zap"

	"github.com/udsvisor/udsvisor/config"
)

// The on-demand side of a service (start = "on-demand", idle_stop):
// waiting for a connection, and stopping idle processes.

// demanded is the demand watch number gen that saw a connection wait.
type demanded struct{ gen int }

// idleTick is the end of an idle_stop period of watchIdle number gen.
type idleTick struct{ gen int }

// idleCheck is the answer of checkIdle's goroutine for the processes
// watched since watchIdle number gen.
type idleCheck struct {
	gen    int
	active bool
}

// activate is what up and a reload do: start the service, or, with
// start = "on-demand", wait for its first connection.
func (s *service) activate(reply chan error) {
	if s.cfg.Start != config.StartOnDemand {
		s.start(reply)
		return
	}
	if !s.active && !s.stopping && !s.busy() {
		for _, inst := range s.insts {
			inst.disarm(timerMain)
			inst.failures = 0
		}
		s.wait()
	}
	s.answer(reply, nil)
}

// wait leaves the service without a process until a connection waits on
// one of its sockets. If its listeners cannot be watched, it starts now:
// a service that cannot wait for demand must still serve.
func (s *service) wait() {
	s.stopDemand()
	s.stopIdleWatch()
	s.active = false
	for _, inst := range s.insts {
		if inst.st == Backoff { // a retry would start what now waits
			inst.disarm(timerMain)
			inst.transition(s, Stopped)
		}
	}
	ev := demanded{gen: s.demandGen}
	w, err := watchListeners(s.files(), false, func() { s.inbox.post(ev) })
	if err != nil {
		s.log.Error("watch the sockets for a connection; starting now", zap.Error(err))
		s.start(make(chan error, 1))
		return
	}
	s.demand = w
	s.setRest(Waiting)
}

// onDemand starts the waiting service: a connection waits in the backlog
// and the new processes take it.
func (s *service) onDemand(ev demanded) {
	if ev.gen != s.demandGen || s.demand == nil {
		return // an earlier watch
	}
	s.stopDemand()
	if !s.active && s.rest == Waiting && !s.stopping {
		s.log.Info("a connection is waiting; starting")
		s.startInstances(false)
	}
}

func (s *service) stopDemand() {
	s.demand.stop()
	s.demand = nil
	s.demandGen++
}

// watchIdle begins watching a started on-demand service for idleness,
// unless it already is.
func (s *service) watchIdle() {
	if s.cfg.Start != config.StartOnDemand || s.cfg.IdleStop == 0 || s.activity != nil {
		return
	}
	w, err := watchListeners(s.files(), true, nil)
	if err != nil {
		s.log.Error("watch the sockets for idleness; the service is not stopped when idle", zap.Error(err))
		return
	}
	s.activity = w
	s.idleGen++
	s.armIdle()
}

func (s *service) armIdle() {
	ev := idleTick{gen: s.idleGen}
	s.idle = time.AfterFunc(s.cfg.IdleStop, func() { s.inbox.post(ev) })
}

func (s *service) stopIdleWatch() {
	s.activity.stop()
	s.activity = nil
	if s.idle != nil {
		s.idle.Stop()
		s.idle = nil
	}
	s.idleGen++
}

// checkIdle runs at the end of each idle_stop period. A new connection
// during the period makes the service active; otherwise the connections
// still open are counted, on a goroutine of its own since it reads
// /proc/net.
func (s *service) checkIdle(gen int) {
	if gen != s.idleGen || s.activity == nil {
		return // about processes that have ended
	}
	if s.activity.sawSome() {
		s.armIdle()
		return
	}
	files, log := s.files(), s.log
	go func() {
		n, err := openConnections(files)
		if err != nil {
			log.Warn("count the open connections; taking the service as busy", zap.Error(err))
		}
		s.inbox.post(idleCheck{gen: gen, active: err != nil || n > 0})
	}()
}

// onIdleChecked stops an idle service (the next connection starts it
// again) or looks again after another period.
func (s *service) onIdleChecked(c idleCheck) {
	if c.gen != s.idleGen || s.activity == nil {
		return
	}
	if c.active {
		s.armIdle()
		return
	}
	s.log.Info("no connection for idle_stop; stopping until the next one", zap.Duration("idle_stop", s.cfg.IdleStop))
	s.stop(nil, Waiting)
}
