// Package supervisor owns the services of a udsvisor config: it binds
// their sockets once, starts each service as its own user through the
// launch helper, restarts it by its policy and stops everything on
// shutdown.
//
// Each service is owned by one goroutine (service.run) that alone changes
// its state; everything else sends it requests. The states:
//
//	stopped  --start-->            starting
//	starting --first accept, or MinUptime passes--> running
//	running  --exit-->             starting (at once, however young the process)
//	starting --exit-->             starting (the first failed start is retried at once)
//	                               backoff  (further failed starts: 100 ms doubling to 30 s)
//	                               failed   (StartLimit failed starts in a row)
//	starting/running --exit-->     exited   (restart = never, or on-failure after exit 0)
//	backoff  --delay passes-->     starting
//	starting/running --stop-->     stopping --exit--> stopped
//	stopping --StopTimeout-->      SIGKILL to the process group
//
// The listening sockets are bound before the first start and stay open
// in udsvisor until it exits or a reload removes them: a restart never
// closes, rebinds or unlinks them, so connections queue in the kernel
// backlog while no process accepts, and the next process serves them.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/privdrop"
	"github.com/udsvisor/udsvisor/sockets"
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
	// Reconfigure is called by Reload when the [supervisor] table
	// changed, once the new sockets are bound and before any service
	// changes; an error refuses the reload. It applies what it accepts (the control socket's group
	// and mode, who may control) and refuses what needs a restart.
	// Nil when the caller serves no control socket.
	Reconfigure func(old, new config.Supervisor) error
}

// Supervisor runs the services of one config.
type Supervisor struct {
	log    *zap.Logger
	opts   Options
	reaper *Reaper
	// launcher and outs are set by Run before the first service exists.
	launcher *privdrop.Launcher
	outs     *outputs
	ready    chan struct{} // closed once the first services exist

	// reloadMu serialises Reload and shutdown, the only writers of the
	// fields below mu.
	reloadMu sync.Mutex

	// mu guards the fields below. They are replaced as a whole (never
	// modified in place) by Run and Reload, so a reader may keep what it
	// got after unlocking.
	mu       sync.RWMutex
	cfg      *config.Config
	services map[string]*running
	// pool holds every bound listener by socketKey.
	pool    map[string]*pooled
	closing bool
	// bound counts Binds, to close listeners in reverse order.
	bound uint64
}

// pooled is a bound listener and when it was bound.
type pooled struct {
	*sockets.Listener
	seq uint64
}

// running is a service and the cancel of the goroutine that owns it.
type running struct {
	svc    *service
	cancel context.CancelFunc
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
	cfg := s.cfg // Reload replaces s.cfg once ready is closed
	// First, while udsvisor holds few fds: the launcher's thread keeps
	// a copy of the fd table as it is now, and forks from it.
	launcher, err := privdrop.NewLauncher(launchThreads)
	if err != nil {
		return fmt.Errorf("start the launcher: %w", err)
	}
	// Closed last: it kills whatever it started that still runs.
	defer launcher.Close()
	s.launcher = launcher
	pool, err := s.bindAll(cfg, nil)
	if err != nil {
		return err
	}
	s.pool = pool
	if s.outs, err = newOutputs(); err != nil {
		closeListeners(pool, nil, s.log)
		return err
	}
	stopOutputs := make(chan struct{})
	outputsDone := make(chan struct{})
	go func() {
		defer close(outputsDone)
		s.outs.run(stopOutputs, outputGrace)
	}()

	reaperCtx, stopReaper := context.WithCancel(context.Background())
	reaperDone := make(chan struct{})
	go func() {
		defer close(reaperDone)
		s.reaper.Run(reaperCtx)
	}()

	first := make(map[string]*running, len(cfg.Services))
	for _, c := range cfg.Services {
		first[c.Name] = s.launchService(c, newLogRing())
	}
	s.mu.Lock()
	s.services = first
	s.mu.Unlock()
	// From here a reload may replace s.services; the first start uses
	// the services this run created.
	close(s.ready)
	startAll(ctx, first, s.log)
	settled := time.AfterFunc(settleTime(cfg), releaseMemory)
	defer settled.Stop()
	if ctx.Err() == nil {
		s.log.Info("udsvisor is up", zap.Int("services", len(first)), zap.Int("sockets", len(pool)))
		if started != nil {
			started()
		}
	}

	<-ctx.Done()
	s.log.Info("shutting down")
	s.reloadMu.Lock()
	s.mu.Lock()
	s.closing = true
	services, pool := s.services, s.pool
	s.mu.Unlock()
	s.reloadMu.Unlock()

	stopServices(maps(services))
	if s.opts.ReapOrphans {
		s.reaper.KillOrphans(5 * time.Second)
	}
	closeListeners(pool, nil, s.log)
	stopReaper()
	<-reaperDone
	close(stopOutputs)
	s.outs.wake()
	<-outputsDone
	return nil
}

// outputGrace is how long the last output of stopped services may take to
// reach the log at shutdown; a grandchild that escaped and kept a pipe open
// does not hold udsvisor up longer.
const outputGrace = time.Second

// launchThreads is how many threads fork launch helpers: a fork returns
// once its child has exec'd, and a few in parallel keep both CPUs of a
// small machine busy while a thousand services start.
const launchThreads = 4

// startParallel bounds the launches in flight at once. Each launch waits
// for its helper to exec the command; forks themselves are serialised by
// the launcher, so a few in flight keep every CPU busy without a
// thousand helpers competing at once.
const startParallel = 8

// startAll starts every service in rs, a few at a time, and returns once
// each has been started (or ctx is done).
func startAll(ctx context.Context, rs map[string]*running, log *zap.Logger) {
	sem := make(chan struct{}, startParallel)
	var wg sync.WaitGroup
	for name, r := range rs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := r.svc.call(ctx, request{op: opStart}); err != nil && ctx.Err() == nil {
				log.Error("start", zap.String("service", name), zap.Error(err))
			}
		}()
	}
	wg.Wait()
}

// settleTime is when the start-up burst is over: every process has
// started, or it has lived min_uptime and its accept watch has ended.
func settleTime(cfg *config.Config) time.Duration {
	d := time.Duration(0)
	for _, c := range cfg.Services {
		d = max(d, c.MinUptime)
	}
	return d + 100*time.Millisecond
}

// releaseMemory hands the memory of a burst (the config's parse tree,
// the launches' buffers and stacks) back to the system at once. Without
// it the runtime returns it only over minutes, and an idle udsvisor
// would keep megabytes it no longer uses. No memory limit is set: logs
// kept for ctl logs grow the live heap legitimately, and a limit below
// it would make the collector run without end.
func releaseMemory() {
	debug.FreeOSMemory()
}

func maps(m map[string]*running) []*running {
	rs := make([]*running, 0, len(m))
	for _, r := range m {
		rs = append(rs, r)
	}
	return rs
}

// launchService creates the service for c with its sockets from the pool
// and starts its goroutine (not its process).
func (s *Supervisor) launchService(c *config.Service, logs *logRing) *running {
	listeners := make([]*pooled, len(c.Sockets))
	for i, sock := range c.Sockets {
		listeners[i] = s.pool[socketKey(sock)]
	}
	// The files are fetched at each launch: mend may replace a socket.
	files := func() []*os.File {
		fs := make([]*os.File, len(listeners))
		for i, l := range listeners {
			fs[i] = l.File()
		}
		return fs
	}
	log := newSvcLog(s.log, c.Name)
	mend := func() {
		for _, l := range listeners {
			mendSocket(l.Listener, log)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{svc: newService(c, files, mend, s.opts.Exe, s.launcher, s.reaper, s.outs, logs, log), cancel: cancel}
	go r.svc.run(ctx)
	return r
}

// mendSocket repairs what a process that just exited may have done to
// its socket. A process shares the open file description of the listening
// socket, so its shutdown(2) kills the socket for everyone (connects are
// refused, and no listen(2) revives it): such a socket is replaced by a
// new one at the same name, which the next process receives. A name the process unlinked
// (gunicorn does, SECURITY-NOTES 0.11) is linked again to the same socket.
func mendSocket(l *sockets.Listener, log svcLog) {
	addr := zap.String("address", l.Spec().String())
	err := l.Check()
	switch {
	case errors.Is(err, sockets.ErrPoisoned):
		log.Warn("socket was shut down by a process; rebinding it", addr, zap.Error(err))
		if err := l.Rebind(); err != nil {
			log.Error("rebind socket", addr, zap.Error(err))
		}
		return
	case err != nil:
		log.Error("check socket", addr, zap.Error(err))
	}
	restored, err := l.Restore()
	switch {
	case err != nil:
		log.Error("socket name is gone and cannot be restored", zap.Error(err))
	case restored:
		log.Warn("socket name was unlinked; restored it", zap.String("path", l.Spec().Path))
	}
}

// stopServices stops the services in parallel for good (a start that
// comes later is refused with ErrReplaced, never revives them), waits
// until none has a process, then ends their goroutines.
func stopServices(rs []*running) {
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.svc.call(context.Background(), request{op: opRetire}); err != nil {
				r.svc.log.Error("stop", zap.Error(err))
			}
			r.cancel()
			<-r.svc.done
		}()
	}
	wg.Wait()
}

// socketKey identifies a socket across configs: the same key means the
// same bound listener can serve it. The backlog is not part of it: a
// reload applies a new backlog to the live socket.
func socketKey(c *config.Socket) string {
	if c.IsUnix() {
		return "unix:" + c.Path
	}
	return "tcp:" + c.Addr.String()
}

// bindAll returns a pool with a listener for every socket of cfg, taking
// those already in have and binding the others. On error it closes what
// it bound (not what it took from have) and returns the error. Called by
// Run and by Reload with reloadMu held.
func (s *Supervisor) bindAll(cfg *config.Config, have map[string]*pooled) (map[string]*pooled, error) {
	pool := make(map[string]*pooled)
	var fresh []*sockets.Listener
	for _, c := range cfg.Services {
		for _, sock := range c.Sockets {
			key := socketKey(sock)
			if l, ok := have[key]; ok {
				pool[key] = l
				continue
			}
			l, err := sockets.Bind(socketSpec(sock))
			if err != nil {
				for i := len(fresh) - 1; i >= 0; i-- {
					fresh[i].Close()
				}
				return nil, fmt.Errorf("service %s: %w", c.Name, err)
			}
			fresh = append(fresh, l)
			s.bound++
			pool[key] = &pooled{Listener: l, seq: s.bound}
			s.log.Info("socket ready", zap.String("service", c.Name), zap.String("socket", sock.Name),
				zap.String("address", sock.String()))
		}
	}
	return pool, nil
}

func socketSpec(c *config.Socket) sockets.Spec {
	return sockets.Spec{
		Path: c.Path, Addr: c.Addr,
		UID: int(c.UID), GID: int(c.GID), Mode: c.Mode, DirMode: c.DirectoryMode,
		Backlog: c.Backlog,
	}
}

// closeListeners closes the listeners of pool that keep does not hold,
// removing their socket files, newest first: a directory is removed by
// the Bind that created it, which must come after the sockets bound into
// it later.
func closeListeners(pool, keep map[string]*pooled, log *zap.Logger) {
	var ls []*pooled
	for key, l := range pool {
		if _, ok := keep[key]; !ok {
			ls = append(ls, l)
		}
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].seq > ls[j].seq })
	for _, l := range ls {
		if err := l.Close(); err != nil {
			log.Warn("remove socket", zap.Error(err))
		}
	}
}
