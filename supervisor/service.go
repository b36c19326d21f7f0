package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/privdrop"
)

// request is a call into a service's goroutine. reply receives exactly one
// error (nil on success) and must have room for it.
type request struct {
	op    op
	sig   unix.Signal     // for opSignal
	cfg   *config.Service // for opReconfigure
	reply chan error
}

type op int

const (
	opStart op = iota
	opStop
	opRestart
	opSignal
	opReconfigure
	opRetire
)

func (o op) String() string {
	return [...]string{"start", "stop", "restart", "signal", "reconfigure", "retire"}[o]
}

// service runs one configured service. All fields below cmds are owned by
// the run goroutine; nothing else reads or writes them.
type service struct {
	cfg *config.Service
	// files returns the listening sockets, fd 3.. in the child, in config
	// order. It is called at each launch because mend may have replaced
	// a socket since the last one.
	files func() []*os.File
	// mend repairs the sockets after every exit, before a restart: it
	// rebinds a socket the process shut down and links a name the process
	// (or anyone) unlinked.
	mend func()
	env  []string // the child's environment, built once
	exe  string   // the launch helper (the udsvisor binary)
	// launcher forks the helper from a thread with a small fd table.
	launcher *privdrop.Launcher
	reaper   *Reaper
	outs     *outputs
	log      svcLog
	logs     *logRing
	cmds     chan request
	// done is closed when run returns; requests then fail with
	// errServiceGone instead of waiting forever.
	done chan struct{}
	// exited has room for one Exit because a service has at most one
	// process, and the reaper must never block on a slow service.
	exited chan Exit

	st        State
	since     time.Time
	pid       int
	startedAt time.Time
	restarts  int
	failures  int
	started   bool // a first process was started (for counting restarts)
	lastExit  *Exit
	lastErr   string
	// startAfterStop is set by a restart request while stopping.
	startAfterStop bool
	// retired is set by the final stop, when a reload replaces or
	// removes the service or udsvisor shuts down: from then on no
	// request may start a process with this definition (T26).
	retired bool
	// waiters are stop requests answered when the process is gone.
	waiters []chan error
	// restartWaiters are restart requests answered once the new process
	// has been started (or the restart was cancelled by a stop).
	restartWaiters []chan error
	timer          *time.Timer
	timerC         <-chan time.Time // nil when no timer is armed
	// watch looks for the starting process's first accept; acceptC is
	// its channel, nil when no watch runs.
	watch   *acceptWatch
	acceptC <-chan struct{}

	// snap is the latest state, published by the run goroutine before
	// it answers any request, so that readers never wait for it.
	snap atomic.Pointer[snapshot]
	// sockets is apiSockets(cfg), rebuilt when cfg changes.
	sockets []api.Socket
}

// snapshot is a service's state at one moment, immutable once published:
// as Status for the supervisor's callers and as the API shows it.
type snapshot struct {
	st  Status
	api api.Service
}

func newService(cfg *config.Service, files func() []*os.File, mend func(), exe string, launcher *privdrop.Launcher, reaper *Reaper, outs *outputs, logs *logRing, log svcLog) *service {
	s := &service{
		cfg:      cfg,
		files:    files,
		mend:     mend,
		env:      childEnv(cfg),
		exe:      exe,
		launcher: launcher,
		reaper:   reaper,
		outs:     outs,
		log:      log,
		logs:     logs,
		cmds:     make(chan request),
		exited:   make(chan Exit, 1),
		done:     make(chan struct{}),
		st:       Stopped,
		since:    time.Now(),
	}
	s.sockets = apiSockets(cfg)
	s.publish()
	return s
}

// childEnv builds the environment from scratch: nothing of udsvisor's own
// (NOTIFY_SOCKET, INVOCATION_ID, LD_PRELOAD, secrets) reaches a child.
// LISTEN_PID is added by the launch helper, which alone knows the pid.
func childEnv(cfg *config.Service) []string {
	env := append([]string(nil), cfg.Environment...)
	has := func(key string) bool {
		for _, kv := range env {
			if strings.HasPrefix(kv, key+"=") {
				return true
			}
		}
		return false
	}
	if !has("PATH") {
		env = append(env, "PATH="+config.DefaultPath)
	}
	for _, kv := range [][2]string{{"HOME", cfg.Home}, {"USER", cfg.User}, {"LOGNAME", cfg.User}} {
		if !has(kv[0]) {
			env = append(env, kv[0]+"="+kv[1])
		}
	}
	if len(cfg.Sockets) > 0 {
		names := make([]string, len(cfg.Sockets))
		for i, s := range cfg.Sockets {
			names[i] = s.Name
		}
		env = append(env, "LISTEN_FDS="+strconv.Itoa(len(names)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
	}
	return env
}

// call sends a request to the service goroutine and waits for its answer.
func (s *service) call(ctx context.Context, r request) error {
	r.reply = make(chan error, 1) // the goroutine answers without waiting for us
	select {
	case s.cmds <- r:
	case <-s.done:
		return errServiceGone
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errServiceGone: the service was removed (by a reload) meanwhile.
var errServiceGone = errors.New("service removed")

// run is the service goroutine. It returns when ctx is done; by then the
// supervisor has stopped the service through stop requests.
func (s *service) run(ctx context.Context) {
	defer close(s.done)
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-s.cmds:
			s.handle(r)
		case ex := <-s.exited:
			s.onExit(ex)
		case <-s.timerC:
			s.timer, s.timerC = nil, nil
			s.onTimer()
		case <-s.acceptC:
			s.stopWatch()
			if s.st == Starting {
				s.onStarted("accepted a connection")
			}
		}
		s.publish()
	}
}

// publish makes the current state what Status readers see.
func (s *service) publish() {
	st := s.status()
	s.snap.Store(&snapshot{st: st, api: toAPI(st, s.sockets)})
}

// answer publishes the state, then replies: whoever gets the reply and
// then reads the status sees the state the reply speaks of.
func (s *service) answer(reply chan error, err error) {
	s.publish()
	reply <- err
}

func (s *service) transition(to State) {
	if to == s.st {
		return
	}
	s.log.Info("state", zap.String("from", string(s.st)), zap.String("to", string(to)), zap.Int("pid", s.pid))
	s.st = to
	s.since = time.Now()
}

func (s *service) arm(d time.Duration) {
	s.disarm()
	s.timer = time.NewTimer(d)
	s.timerC = s.timer.C
}

func (s *service) disarm() {
	if s.timer != nil {
		s.timer.Stop()
	}
	// Dropped, not kept for reuse: an idle service holds no timer.
	s.timer, s.timerC = nil, nil
}

func (s *service) status() Status {
	st := Status{
		Name: s.cfg.Name, State: s.st, Since: s.since, Pid: s.pid,
		StartedAt: s.startedAt, Restarts: s.restarts, Failures: s.failures,
		LastError: s.lastErr, cfg: s.cfg,
	}
	if s.lastExit != nil {
		ex := *s.lastExit
		st.LastExit = &ex
	}
	return st
}

func (s *service) handle(r request) {
	switch r.op {
	case opReconfigure:
		// Only what does not touch the process may change here (socket
		// ownership, applied by the caller on the live socket).
		s.cfg = r.cfg
		s.sockets = apiSockets(r.cfg)
		s.answer(r.reply, nil)
	case opStart:
		s.answer(r.reply, s.start())
	case opStop:
		s.stop(r.reply)
	case opRetire:
		s.retired = true
		s.stop(r.reply)
	case opRestart:
		s.restart(r.reply)
	case opSignal:
		if s.pid == 0 {
			s.answer(r.reply, ErrNotRunning)
			return
		}
		s.answer(r.reply, s.reaper.Signal(s.pid, r.sig))
	default:
		s.answer(r.reply, fmt.Errorf("internal error: %s in state %s", r.op, s.st))
	}
}

// start is an operator's (or the initial) start: it forgets past failures.
func (s *service) start() error {
	if s.retired {
		return ErrReplaced
	}
	switch s.st {
	case Starting, Running:
		return nil
	case Stopping:
		s.startAfterStop = true
		return nil
	case Stopped, Exited, Failed, Backoff:
		s.disarm()
		s.failures = 0
		s.spawn()
		return nil
	default:
		return fmt.Errorf("internal error: start in state %s", s.st)
	}
}

// restart answers reply once a new process has been started, as
// systemctl restart does, so that a caller sees the new pid.
func (s *service) restart(reply chan error) {
	if s.retired {
		s.answer(reply, ErrReplaced)
		return
	}
	switch s.st {
	case Starting, Running:
		s.stop(nil) // clears startAfterStop: a plain stop cancels a pending restart
		s.startAfterStop = true
		s.restartWaiters = append(s.restartWaiters, reply)
	case Stopping:
		s.startAfterStop = true
		s.restartWaiters = append(s.restartWaiters, reply)
	default:
		s.answer(reply, s.start())
	}
}

// stop asks the process to end; reply (if not nil) is answered once no
// process is left.
func (s *service) stop(reply chan error) {
	switch s.st {
	case Starting, Running:
		s.startAfterStop = false
		if reply != nil {
			s.waiters = append(s.waiters, reply)
		}
		s.stopWatch()
		s.transition(Stopping)
		if err := s.reaper.Signal(s.pid, s.cfg.StopSignal); err != nil {
			s.log.Warn("stop signal", zap.Error(err))
		}
		s.arm(s.cfg.StopTimeout)
	case Stopping:
		s.startAfterStop = false
		if reply != nil {
			s.waiters = append(s.waiters, reply)
		}
	case Backoff, Exited, Failed, Stopped:
		s.disarm()
		if s.st == Backoff {
			s.transition(Stopped)
		}
		if reply != nil {
			s.answer(reply, nil)
		}
	default:
		if reply != nil {
			s.answer(reply, fmt.Errorf("internal error: stop in state %s", s.st))
		}
	}
}

func (s *service) onTimer() {
	switch s.st {
	case Starting:
		s.onStarted("lived min_uptime")
	case Backoff:
		s.spawn()
	case Stopping:
		s.log.Warn("stop timeout passed; killing the process group",
			zap.Int("pid", s.pid), zap.Duration("stop_timeout", s.cfg.StopTimeout))
		if err := s.reaper.Signal(s.pid, unix.SIGKILL); err != nil {
			s.log.Warn("kill", zap.Error(err))
		}
	case Running, Stopped, Exited, Failed:
		// A timer that fired as it was being replaced; nothing to do.
	default:
		s.log.Error("internal error: timer in state " + string(s.st))
	}
}

func (s *service) onExit(ex Exit) {
	if ex.Pid != s.pid {
		s.log.Error("internal error: exit of unknown pid", zap.Int("pid", ex.Pid))
		return
	}
	s.lastExit = &ex
	s.pid = 0
	s.disarm()
	s.stopWatch()
	s.mend()
	fields := []zap.Field{zap.Int("pid", ex.Pid), zap.String("status", ex.String()),
		zap.Duration("uptime", ex.Time.Sub(s.startedAt).Round(time.Millisecond))}
	switch s.st {
	case Stopping:
		s.log.Info("stopped", fields...)
		s.transition(Stopped)
		for _, w := range s.waiters {
			s.answer(w, nil)
		}
		s.waiters = nil
		var result error
		if s.startAfterStop {
			s.startAfterStop = false
			s.failures = 0
			s.spawn()
			if s.lastErr != "" {
				result = errors.New(s.lastErr)
			}
		} else {
			result = errors.New("restart cancelled: the service was stopped")
		}
		for _, w := range s.restartWaiters {
			s.answer(w, result)
		}
		s.restartWaiters = nil
	case Running:
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
		s.log.Error("internal error: exit in state "+string(s.st), fields...)
	}
}

// onStarted marks the starting process as started: it has shown that it
// works, by reason. From now on its end is not a failed start.
func (s *service) onStarted(reason string) {
	s.stopWatch()
	s.disarm()
	s.failures = 0
	s.log.Info("started", zap.Int("pid", s.pid), zap.String("because", reason))
	s.transition(Running)
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
	case s.cfg.Restart == config.RestartNever,
		s.cfg.Restart == config.RestartOnFailure && clean:
		s.transition(Exited)
	case s.cfg.StartLimit > 0 && s.failures >= s.cfg.StartLimit:
		s.log.Error("start limit reached; giving up until started again",
			zap.Int("failures", s.failures))
		s.transition(Failed)
	default:
		d := backoffDelay(s.failures)
		if d == 0 {
			s.spawn()
			return
		}
		s.log.Info("restart scheduled", zap.Duration("in", d), zap.Int("failures", s.failures))
		s.transition(Backoff)
		s.arm(d)
	}
}

// spawn starts a new process. The sockets are not touched: they stay
// bound and listening in udsvisor, so connections queue in the kernel
// backlog until the new process accepts them (only a socket that the last
// process shut down was replaced, by mend).
func (s *service) spawn() {
	if s.started {
		s.restarts++
	}
	s.started = true
	// The watch begins before the launch, so that connections that
	// queued for this process are seen waiting before it can take any;
	// begun after, it could miss a process that accepts at once.
	watch := watchAccept(s.files(), s.cfg.MinUptime)
	pid, err := s.launchOnce()
	if err != nil {
		s.lastErr = err.Error()
		s.log.Error("start failed", zap.Error(err))
		if pid == 0 {
			watch.stop()
			// Nothing runs, so no exit will come: count it here. A
			// service that could not even start has failed, whatever
			// its restart policy.
			s.failures++
			if s.cfg.Restart == config.RestartNever {
				s.transition(Failed)
				return
			}
			s.transition(Backoff)
			s.afterExit(false)
			return
		}
		// The helper runs and will exit 127; onExit counts it.
	} else {
		s.lastErr = ""
	}
	s.pid = pid
	s.startedAt = time.Now()
	s.transition(Starting)
	// Started by whichever comes first: the first accept, or MinUptime.
	s.arm(s.cfg.MinUptime)
	if s.watch = watch; watch != nil {
		s.acceptC = watch.C
	}
}

// launchOnce runs launch on a goroutine of its own and waits for it. The
// launch calls deep into os/exec and the encoder; on the service's own
// goroutine they would grow its stack for good, about 10 KiB that each
// of 1,000 idle services would keep, where a short-lived goroutine gives
// its stack back when it ends.
func (s *service) launchOnce() (int, error) {
	type result struct {
		pid int
		err error
	}
	done := make(chan result, 1) // the launcher never waits for us
	go func() {
		pid, err := s.launch()
		done <- result{pid, err}
	}()
	r := <-done
	return r.pid, r.err
}

// launchTimeout bounds the launch helper's work between fork and exec,
// which normally takes milliseconds.
const launchTimeout = 30 * time.Second

// launch starts the launch helper, which becomes the command. It returns
// the pid whenever a process was created, even with an error.
func (s *service) launch() (int, error) {
	c := s.cfg
	files := s.files()
	stdout, err := s.outs.pipe(s.log, s.logs, "stdout")
	if err != nil {
		return 0, err
	}
	stderr, err := s.outs.pipe(s.log, s.logs, "stderr")
	if err != nil {
		stdout.abort()
		return 0, err
	}
	spec := &privdrop.Spec{
		Path: c.Command[0], Args: c.Command, Env: s.env, Dir: c.WorkingDir,
		UID: c.UID, GID: c.GID, Groups: c.Groups, Umask: uint32(c.Umask),
		NumFDs: len(files), AmbientCaps: c.AmbientCaps,
	}
	for _, lim := range c.Limits {
		spec.Rlimits = append(spec.Rlimits, privdrop.Rlimit{Resource: lim.Resource, Cur: lim.Soft, Max: lim.Hard})
	}
	l, err := privdrop.Prepare(s.exe, spec, files, stdout.w, stderr.w)
	if err != nil {
		stdout.abort()
		stderr.abort()
		return 0, fmt.Errorf("start %s: %w", s.cfg.Name, err)
	}
	pid, err := s.reaper.Start(func() (int, error) { return s.launcher.Start(l) }, s.exited)
	if err != nil {
		l.Abort()
		stdout.abort()
		stderr.abort()
		return 0, fmt.Errorf("start %s: %w", s.cfg.Name, err)
	}
	stdout.start(pid)
	stderr.start(pid)
	// A helper that neither execs nor reports within a generous bound is
	// stuck (reading its spec, say); killing it makes AfterStart return
	// and the exit is handled like any failed start.
	watchdog := time.AfterFunc(launchTimeout, func() {
		s.log.Error("launch helper stuck; killing it", zap.Int("pid", pid))
		_ = s.reaper.Signal(pid, unix.SIGKILL)
	})
	err = l.AfterStart()
	watchdog.Stop()
	if err != nil {
		return pid, fmt.Errorf("start %s: %w", s.cfg.Name, err)
	}
	return pid, nil
}
