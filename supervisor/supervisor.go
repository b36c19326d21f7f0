// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Package supervisor owns the services of a udsvisor config: it binds
// their sockets once, starts each service as its own user through the
// launch helper, restarts it by its policy and stops everything on
// shutdown.
//
// Each service is owned by one goroutine (service.run) that alone changes
// its state; everything else sends it requests or posts it events. A
// service has Instances processes (instance.go), each with these states
// of its own; the service shows the best of them (running while any
// instance serves), or where it rests with no process: stopped, waiting
// (on demand) or paused.
//
//	stopped  --start-->            starting
//	starting --first accept, or MinUptime passes--> running
//	starting --READY=1 (ready = "notify"; none in StartTimeout: SIGKILL)--> running
//	running  --RELOADING=1--> reloading --READY=1--> running
//	running  --no WATCHDOG=1 within Watchdog--> SIGKILL to the process group
//	running/reloading --exit-->    starting (at once, however young the process)
//	starting --exit-->             starting (the first failed start is retried at once)
//	                               backoff  (further failed starts: 100 ms doubling to 30 s)
//	                               failed   (StartLimit failed starts in a row)
//	starting/running --exit-->     exited   (restart = never, or on-failure after exit 0)
//	backoff  --delay passes-->     starting
//	starting/running/reloading --stop--> stopping --exit--> stopped
//	stopping --StopTimeout-->      SIGKILL to the process group
//	any state --pause--> (stopping -->) paused --resume--> starting (or waiting)
//
// With start = "on-demand", up leaves the service waiting, and a process
// that ends (or is stopped after IdleStop without a connection) leaves it
// waiting again instead of starting the next at once:
//
//	waiting  --a connection waits on a socket--> starting
//
// An overlapping restart (restart_mode = "overlap") gives every index a
// new instance beside the old one; once every new one is running, the old
// ones go stopping and are dropped when they end. A new one that fails to
// start drops the new generation instead, and the old ones stay current.
// Scaling down sends the highest indexes stopping and drops them.
//
// The listening sockets are bound before the first start and stay open
// in udsvisor until it exits or a reload removes them: a restart never
// closes, rebinds or unlinks them, so connections queue in the kernel
// backlog while no process accepts, and the next process serves them.
package supervisor

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/privdrop"
	"github.com/udsvisor/udsvisor/sockets"
)

// Options tune a Supervisor beyond its config.
type Options struct {
	// ReapOrphans makes the reaper also reap processes that are not
	// services' main processes, for when udsvisor is a subreaper or PID 1.
	ReapOrphans bool
	// Launcher forks the launch helpers. Nil: Run starts a launcher of
	// its own threads and closes it when it returns. Given, it is the
	// caller's to close (after Run), and it must be privdrop's
	// main-thread launcher for Handover's exec to keep the children.
	Launcher *privdrop.Launcher
	// Reconfigure is called by Reload when the [supervisor] table
	// changed, once the new sockets are bound and before any service
	// changes; an error refuses the reload. It applies what it accepts
	// (the control socket's group and mode, who may control) and refuses
	// what needs a restart. Nil when the caller serves no control socket.
	Reconfigure func(old, new config.Supervisor) error
	// Binary is the path of the udsvisor binary, which a relay service
	// ([services.NAME.relay]) runs as `udsvisor __relay` in front of its
	// app, as the service's user. Empty: relay services cannot start.
	Binary string
}

// Supervisor runs the services of one config. One goroutine, Run's, owns
// the services, the sockets and the config, and alone replaces them (at
// start-up, on reload and at shutdown); it publishes them as an
// immutable view that readers load without waiting for it.
type Supervisor struct {
	log    *zap.Logger
	opts   Options
	cfg    *config.Config // the config of the first start
	reaper *reaper
	// exe is the binary that acts as the launch helper: the running
	// binary, even if its file was replaced (CVE-2019-5736 taught to
	// exec that, not a path); a field so that a test can name another.
	exe string
	// helperTimeout bounds the launch helper's work between fork and
	// exec, which normally takes milliseconds; a field so that a test
	// can shorten it.
	helperTimeout time.Duration

	// view is the latest published state of the run goroutine; nil
	// until the first services exist.
	view atomic.Pointer[view]
	// views answers readers that come before the first view: a send
	// waits until the run goroutine takes requests.
	views chan chan *view
	// reloads carries Reload requests to the run goroutine, handovers
	// Handover requests.
	reloads   chan reloadRequest
	handovers chan handoverRequest
	// done is closed when Run returns.
	done chan struct{}
	// changed is notified each time a service's state changes.
	changed broadcast
	// adopted is set by Adopt: Run takes these over instead of binding
	// and starting.
	adopted *adoption
}

// view is what the run goroutine publishes: a consistent set of
// services, replaced as a whole, never changed in place.
type view struct {
	services map[string]*running
	// cfg is the config the services run, but for stale.
	cfg *config.Config
	// stale are the services that still run their definition from
	// before cfg: the last reload's overlap found the new one broken.
	stale []string
	// closing is set once shutdown has begun: no more requests.
	closing bool
}

// running is a service and the context of the goroutine that owns it.
type running struct {
	svc    *service
	ctx    context.Context
	cancel context.CancelFunc
}

// New returns a Supervisor for cfg; Run starts it.
func New(cfg *config.Config, log *zap.Logger, opts Options) *Supervisor {
	return &Supervisor{
		cfg:           cfg,
		log:           log,
		opts:          opts,
		reaper:        newReaper(log, opts.ReapOrphans),
		exe:           "/proc/self/exe",
		helperTimeout: 30 * time.Second,
		views:         make(chan chan *view),
		reloads:       make(chan reloadRequest),
		handovers:     make(chan handoverRequest),
		done:          make(chan struct{}),
	}
}

// runner is the state of the run goroutine; nothing else touches it.
type runner struct {
	log  *zap.Logger
	opts Options
	env  *shared
	cfg  *config.Config
	// services is the current set, also published in the view.
	services map[string]*running
	// pool holds every bound listener by socketKey.
	pool map[string]*pooled
	// bound counts Binds, to close listeners in reverse order.
	bound uint64
	// release lets the output reader go on after a handover.
	release func()
	// names puts back socket names unlinked while they listen; nil if
	// it could not be made.
	names *sockets.NameWatch
}

// Run binds every socket, starts every service and supervises them until
// ctx is done. Then it stops every service (StopSignal to its process
// group, SIGKILL after StopTimeout), waits for all of them, removes the
// socket files it created and returns nil. If a socket cannot be bound,
// it removes what it had bound, starts nothing and returns the error.
// started, if not nil, is called once every service has been started.
func (s *Supervisor) Run(ctx context.Context, started func()) error {
	defer close(s.done)
	launcher := s.opts.Launcher
	if launcher == nil {
		// First, while udsvisor holds few fds: the launcher's threads
		// keep a copy of the fd table as it is now, and fork from it.
		var err error
		if launcher, err = privdrop.NewLauncher(launchThreads); err != nil {
			return fmt.Errorf("start the launcher: %w", err)
		}
		// Closed last: it kills whatever it started that still runs.
		defer launcher.Close()
	}
	r := &runner{log: s.log, opts: s.opts, cfg: s.cfg}
	adopting := s.adopted != nil
	if adopting {
		r.pool, r.bound = s.adopted.pool, uint64(len(s.adopted.pool))
	} else {
		var err error
		if r.pool, err = r.bindAll(s.cfg, nil); err != nil {
			return err
		}
	}
	outs, err := newOutputs()
	if err != nil {
		closeListeners(r.pool, nil, nil, s.log)
		return err
	}
	if r.names, err = sockets.NewNameWatch(nameRestored(s.log)); err != nil {
		s.log.Warn("cannot watch the sockets' names; one unlinked is put back only when its process ends", zap.Error(err))
	} else {
		r.watchNames(s.cfg)
	}
	r.env = &shared{exe: s.exe, binary: s.opts.Binary, launcher: launcher, reaper: s.reaper, outs: outs,
		helperTimeout: s.helperTimeout, changed: &s.changed}
	if s.adopted != nil {
		// Before the reaper runs: an adopted process that ended during
		// the upgrade is a zombie that only its service may reap.
		r.services = r.adoptServices(s.adopted)
		s.adopted = nil
	} else {
		r.services = make(map[string]*running, len(s.cfg.Services))
		for _, c := range s.cfg.Services {
			r.services[c.Name] = r.launchService(c, newLogRing())
		}
	}
	stopOutputs := make(chan struct{})
	outputsDone := make(chan struct{})
	go func() {
		defer close(outputsDone)
		outs.run(stopOutputs, outputGrace)
	}()
	reaperCtx, stopReaper := context.WithCancel(context.Background())
	reaperDone := make(chan struct{})
	go func() {
		defer close(reaperDone)
		s.reaper.run(reaperCtx)
	}()
	s.view.Store(&view{services: r.services, cfg: r.cfg})
	s.loop(ctx, r, started, adopting)

	s.log.Info("shutting down")
	s.view.Store(&view{services: r.services, cfg: r.cfg, closing: true})
	stopServices(values(r.services))
	if s.opts.ReapOrphans {
		s.reaper.killOrphans(5 * time.Second)
	}
	closeListeners(r.pool, nil, r.names, s.log)
	if r.names != nil {
		r.names.Close()
	}
	stopReaper()
	<-reaperDone
	close(stopOutputs)
	outs.wake()
	<-outputsDone
	return nil
}

// loop starts the first services (unless they were adopted, and run)
// and then serves the run goroutine's requests until ctx is done.
func (s *Supervisor) loop(ctx context.Context, r *runner, started func(), adopted bool) {
	startDone := make(chan struct{})
	go func() {
		defer close(startDone)
		if !adopted {
			startAll(ctx, r.services, s.log)
		}
	}()
	// A reload waits until the first start is done; readers do not.
	var reloads chan reloadRequest
	var handovers chan handoverRequest
	var settle *time.Timer
	var settleC <-chan time.Time
	defer func() {
		if settle != nil {
			settle.Stop()
		}
		if startDone != nil {
			<-startDone // startAll returns promptly once ctx is done
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-startDone:
			startDone, reloads, handovers = nil, s.reloads, s.handovers
			settle = time.NewTimer(settleTime(r.cfg))
			settleC = settle.C
			if ctx.Err() == nil {
				s.log.Info("udsvisor is up", zap.Int("services", len(r.services)), zap.Int("sockets", len(r.pool)))
				if started != nil {
					started()
				}
			}
		case req := <-reloads:
			res, err := s.reload(req.ctx, r)
			req.reply <- reloadReply{res, err}
			if err == nil {
				settle.Reset(settleTime(r.cfg))
				settleC = settle.C
			}
		case req := <-handovers:
			s.handover(ctx, r, req)
		case <-settleC:
			settleC = nil
			releaseMemory()
		case w := <-s.views:
			w <- s.view.Load()
		}
	}
}

// outputGrace is how long the last output of stopped services may take to
// reach the log at shutdown; a grandchild that escaped and kept a pipe open
// does not hold udsvisor up longer.
const outputGrace = time.Second

// launchThreads is how many threads fork launch helpers: a fork returns
// once its child has exec'd, and a few in parallel keep both CPUs of a
// small machine busy while a thousand services start.
const launchThreads = 4

// startParallel bounds the launches in flight at once. Each start waits
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
			if err := r.svc.call(ctx, request{op: opActivate}); err != nil && ctx.Err() == nil {
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

func values(m map[string]*running) []*running {
	rs := make([]*running, 0, len(m))
	for _, r := range m {
		rs = append(rs, r)
	}
	return rs
}

// launchService creates the service for c with its sockets from the pool
// and starts its goroutine (not its process).
func (r *runner) launchService(c *config.Service, logs *logRing) *running {
	rs := r.newRunning(c, logs)
	go rs.svc.run(rs.ctx)
	return rs
}

// newRunning creates the service for c with its sockets from the pool.
func (r *runner) newRunning(c *config.Service, logs *logRing) *running {
	listeners := make([]*pooled, len(c.Sockets))
	for i, sock := range c.Sockets {
		listeners[i] = r.pool[socketKey(sock)]
	}
	// The files are fetched at each launch: mend may replace a socket.
	files := func() []*os.File {
		fs := make([]*os.File, len(listeners))
		for i, l := range listeners {
			fs[i] = l.File()
		}
		return fs
	}
	log := newSvcLog(r.log, c.Name)
	mend := func() {
		for _, l := range listeners {
			mendSocket(l.Listener, log)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &running{svc: newService(c, files, mend, r.env, logs, log), ctx: ctx, cancel: cancel}
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
