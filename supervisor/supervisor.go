// Package supervisor owns the services of a udsvisor config: it binds
// their sockets once, starts each service as its own user through the
// launch helper, restarts it by its policy and stops everything on
// shutdown.
//
// Each service is owned by one goroutine (service.run) that alone changes
// its state; everything else sends it requests. The states:
//
//	stopped  --start-->            starting
//	starting --MinUptime passes--> running
//	starting/running --exit-->     starting (restart at once after a healthy run)
//	                               backoff  (consecutive failures: 100 ms doubling to 30 s)
//	                               exited   (restart = never, or on-failure after exit 0)
//	                               failed   (StartLimit consecutive failures)
//	backoff  --delay passes-->     starting
//	starting/running --stop-->     stopping --exit--> stopped
//	stopping --StopTimeout-->      SIGKILL to the process group
//
// The listening sockets are bound before the first start and stay open
// in udsvisor until it exits: a restart never closes, rebinds or unlinks
// them, so connections queue in the kernel backlog while no process
// accepts, and the next process serves them.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"

	"go.uber.org/zap"

	"github.com/udsvisor/udsvisor/sockets"
	"github.com/udsvisor/udsvisor/supervisor/config"
)

// Options tune a Supervisor beyond its config.
type Options struct {
	// Exe is the udsvisor binary that acts as the launch helper;
	// "/proc/self/exe" when empty (the running binary, even if its file
	// was replaced: CVE-2019-5736 taught to exec that, not a path).
	Exe string
	// ReapOrphans makes the reaper also reap processes that are not
	// services' main processes, for when udsvisor is a subreaper or PID 1.
	ReapOrphans bool
}

// Supervisor runs the services of one config.
type Supervisor struct {
	cfg    *config.Config
	log    *zap.Logger
	opts   Options
	reaper *Reaper
	// services is filled by Run before any request can arrive and is
	// not changed afterwards, so it needs no lock.
	services map[string]*service
	ready    chan struct{} // closed once services is filled
	// listeners in config order, closed at the end of Run.
	listeners []*sockets.Listener
}

// New returns a Supervisor for cfg; Run starts it.
func New(cfg *config.Config, log *zap.Logger, opts Options) *Supervisor {
	if opts.Exe == "" {
		opts.Exe = "/proc/self/exe"
	}
	return &Supervisor{
		cfg:    cfg,
		log:    log,
		opts:   opts,
		reaper: NewReaper(log, opts.ReapOrphans),
		ready:  make(chan struct{}),
	}
}

// Run binds every socket, starts every service and supervises them until
// ctx is done. Then it stops every service (StopSignal to its process
// group, SIGKILL after StopTimeout), waits for all of them, removes the
// socket files it created and returns nil. If a socket cannot be bound,
// it removes what it had bound, starts nothing and returns the error.
// started, if not nil, is called once every service has been started.
func (s *Supervisor) Run(ctx context.Context, started func()) error {
	if err := s.bind(); err != nil {
		return err
	}
	defer s.closeListeners()

	reaperCtx, stopReaper := context.WithCancel(context.Background())
	var reaperDone sync.WaitGroup
	reaperDone.Add(1)
	go func() {
		defer reaperDone.Done()
		s.reaper.Run(reaperCtx)
	}()
	defer func() {
		stopReaper()
		reaperDone.Wait()
	}()

	svcCtx, stopServices := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, svc := range s.services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc.run(svcCtx)
		}()
	}
	close(s.ready)
	for _, name := range s.Names() {
		if err := s.services[name].call(ctx, request{op: opStart}); err != nil && ctx.Err() == nil {
			s.log.Error("start", zap.String("service", name), zap.Error(err))
		}
	}
	if ctx.Err() == nil {
		s.log.Info("udsvisor is up", zap.Int("services", len(s.services)), zap.Int("sockets", len(s.listeners)))
		if started != nil {
			started()
		}
	}

	<-ctx.Done()
	s.log.Info("shutting down")
	s.stopAll()
	stopServices()
	wg.Wait()
	return nil
}

// stopAll stops every service in parallel and waits until none runs.
func (s *Supervisor) stopAll() {
	var wg sync.WaitGroup
	for _, svc := range s.services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := svc.call(context.Background(), request{op: opStop}); err != nil {
				svc.log.Error("stop", zap.Error(err))
			}
		}()
	}
	wg.Wait()
}

// bind creates every service's sockets in config order and builds the
// services. On error, everything bound so far is removed again.
func (s *Supervisor) bind() error {
	s.services = make(map[string]*service, len(s.cfg.Services))
	for _, c := range s.cfg.Services {
		files := make([]*os.File, 0, len(c.Sockets))
		for _, sock := range c.Sockets {
			l, err := sockets.Bind(socketSpec(sock))
			if err != nil {
				s.closeListeners()
				return fmt.Errorf("service %s: %w", c.Name, err)
			}
			s.listeners = append(s.listeners, l)
			files = append(files, l.File())
			s.log.Info("socket ready", zap.String("service", c.Name), zap.String("socket", sock.Name),
				zap.String("address", sock.String()))
		}
		s.services[c.Name] = newService(c, files, s.opts.Exe, s.reaper, s.log)
	}
	return nil
}

func socketSpec(c *config.Socket) sockets.Spec {
	return sockets.Spec{
		Path: c.Path, Addr: c.Addr,
		UID: int(c.UID), GID: int(c.GID), Mode: c.Mode, DirMode: c.DirectoryMode,
		Backlog: c.Backlog,
	}
}

func (s *Supervisor) closeListeners() {
	// Reverse order, so directories created for an earlier socket are
	// removed after the sockets inside them.
	for i := len(s.listeners) - 1; i >= 0; i-- {
		if err := s.listeners[i].Close(); err != nil {
			s.log.Warn("remove socket", zap.Error(err))
		}
	}
	s.listeners = nil
}

// Names returns the service names, sorted.
func (s *Supervisor) Names() []string {
	names := make([]string, 0, len(s.cfg.Services))
	for _, c := range s.cfg.Services {
		names = append(names, c.Name)
	}
	sort.Strings(names)
	return names
}

func (s *Supervisor) service(ctx context.Context, name string) (*service, error) {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	svc, ok := s.services[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownService, name)
	}
	return svc, nil
}

// Status returns a copy of the named service's state.
func (s *Supervisor) Status(ctx context.Context, name string) (Status, error) {
	svc, err := s.service(ctx, name)
	if err != nil {
		return Status{}, err
	}
	var st Status
	err = svc.call(ctx, request{op: opStatus, status: &st})
	return st, err
}

// Start starts a stopped, exited or failed service.
func (s *Supervisor) Start(ctx context.Context, name string) error { return s.do(ctx, name, opStart) }

// Stop stops the service and returns once its process is gone.
func (s *Supervisor) Stop(ctx context.Context, name string) error { return s.do(ctx, name, opStop) }

// Restart stops the service's process, if any, and starts a new one. The
// sockets stay bound throughout.
func (s *Supervisor) Restart(ctx context.Context, name string) error {
	return s.do(ctx, name, opRestart)
}

func (s *Supervisor) do(ctx context.Context, name string, o op) error {
	svc, err := s.service(ctx, name)
	if err != nil {
		return err
	}
	if err := svc.call(ctx, request{op: o}); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s %s: %w", o, name, err)
	}
	return nil
}
