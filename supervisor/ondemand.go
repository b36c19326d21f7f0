package supervisor

import (
	"time"

	"go.uber.org/zap"

	"github.com/udsvisor/udsvisor/config"
)

// The on-demand side of the state machine (start = "on-demand",
// idle_stop): waiting for a connection, and stopping an idle process.

// activate is what up and a reload do: start the service, or, with
// start = "on-demand", wait for its first connection.
func (s *service) activate(reply chan error) {
	if s.cfg.Start != config.StartOnDemand {
		s.start(reply)
		return
	}
	switch s.st {
	case Stopped, Paused, Exited, Failed, Backoff:
		s.disarm()
		s.failures = 0
		s.wait()
	}
	s.answer(reply, nil)
}

// wait leaves the service without a process until a connection waits on
// one of its sockets. If its listeners cannot be watched, it starts now:
// a service that cannot wait for demand must still serve.
func (s *service) wait() {
	s.stopDemand()
	w, err := watchListeners(s.files(), false)
	if err != nil {
		s.log.Error("watch the sockets for a connection; starting now", zap.Error(err))
		s.spawn()
		return
	}
	s.demand, s.demandC = w, w.C
	s.transition(Waiting)
}

// onDemand starts the waiting service: a connection waits in the backlog
// and the new process takes it.
func (s *service) onDemand() {
	s.stopDemand()
	if s.st == Waiting {
		s.log.Info("a connection is waiting; starting")
		s.spawn()
	}
}

func (s *service) stopDemand() {
	s.demand.stop()
	s.demand, s.demandC = nil, nil
}

// watchIdle begins watching a started on-demand process for idleness.
func (s *service) watchIdle() {
	if s.cfg.Start != config.StartOnDemand || s.cfg.IdleStop == 0 {
		return
	}
	s.stopIdleWatch()
	w, err := watchListeners(s.files(), true)
	if err != nil {
		s.log.Error("watch the sockets for idleness; the process is not stopped when idle", zap.Error(err))
		return
	}
	s.activity = w
	s.idleGen++
	s.armIdle()
}

func (s *service) armIdle() {
	s.idle = time.NewTimer(s.cfg.IdleStop)
	s.idleC = s.idle.C
}

func (s *service) stopIdleWatch() {
	s.activity.stop()
	s.activity = nil
	if s.idle != nil {
		s.idle.Stop()
	}
	s.idle, s.idleC = nil, nil
}

// checkIdle runs at the end of each idle_stop period. A new connection
// during the period makes it active; otherwise the connections still open
// are counted, on a goroutine of its own since it reads /proc/net.
func (s *service) checkIdle() {
	if s.activity == nil || (s.st != Running && s.st != Reloading) {
		return
	}
	select {
	case <-s.activity.C:
		s.armIdle()
		return
	default:
	}
	files, log, gen := s.files(), s.log, s.idleGen
	go func() {
		n, err := openConnections(files)
		if err != nil {
			log.Warn("count the open connections; taking the service as busy", zap.Error(err))
		}
		s.idleChecked <- idleCheck{gen: gen, active: err != nil || n > 0}
	}()
}

// idleCheck is the answer of checkIdle's goroutine for the process
// watched since watchIdle number gen.
type idleCheck struct {
	gen    int
	active bool
}

// onIdleChecked stops an idle process (the next connection starts
// another) or looks again after another period.
func (s *service) onIdleChecked(c idleCheck) {
	if c.gen != s.idleGen || s.activity == nil || (s.st != Running && s.st != Reloading) {
		return // about a process that has ended
	}
	if c.active {
		s.armIdle()
		return
	}
	s.log.Info("no connection for idle_stop; stopping until the next one",
		zap.Int("pid", s.pid), zap.Duration("idle_stop", s.cfg.IdleStop))
	s.stop(nil)
	s.stopTo = Waiting
}
