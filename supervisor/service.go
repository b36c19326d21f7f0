package supervisor

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

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
	opPause
	opResume
	// opActivate is what up (and a reload) does: start, or wait for a
	// connection with start = "on-demand".
	opActivate
)

func (o op) String() string {
	return [...]string{"start", "stop", "restart", "signal", "reconfigure", "retire", "pause", "resume", "activate"}[o]
}

// shared is what every service of a Supervisor shares, set before the
// first service exists and never modified.
type shared struct {
	exe string // the launch helper (the udsvisor binary)
	// launcher forks the helper from a thread with a small fd table.
	launcher *privdrop.Launcher
	reaper   *reaper
	outs     *outputs
	// helperTimeout bounds the helper's work between fork and exec.
	helperTimeout time.Duration
	// changed is notified each time a service publishes a new state.
	changed *broadcast
}

// service runs one configured service. The fields below cmds are owned by
// the run goroutine: nothing else reads or writes them, and the run
// goroutine never blocks on anything but its select. Readers get the
// published snapshot instead.
type service struct {
	*shared
	// files returns the listening sockets, fd 3.. in the child, in config
	// order. It is called at each launch because mend may have replaced
	// a socket since the last one.
	files func() []*os.File
	// mend repairs the sockets after every exit, before a restart: it
	// rebinds a socket the process shut down and links a name the process
	// (or anyone) unlinked.
	mend func()
	env  []string // the child's environment, built once
	log  svcLog
	logs *logRing
	cmds chan request
	// done is closed when run returns; requests then fail with
	// errServiceGone instead of waiting forever.
	done chan struct{}
	// exited has room for one Exit because a service has at most one
	// process, and the reaper must never block on a slow service.
	exited chan Exit
	// launched receives the steps of the launch in flight (launch.go).
	// Capacity 2: a launch reports at most twice (forked, then exec'd)
	// and must never wait for the service goroutine.
	launched chan launchStep
	// notified receives what the process says on its NOTIFY_SOCKET.
	// Capacity 4: the reader waits for room, and the service goroutine
	// never blocks, so a few suffice to keep the reader reading.
	notified chan notifyMsg

	cfg       *config.Service
	st        State
	since     time.Time
	pid       int
	startedAt time.Time
	restarts  int
	failures  int
	started   bool // a first process was started (for counting restarts)
	lastExit  *Exit
	lastErr   string
	// launching is set from spawn until the launch has reported its
	// last step; early holds an exit of its process that came first, to
	// be handled once the launch has told how it went.
	launching bool
	early     *Exit
	// earlyNotes are messages that came while launching, from a sender
	// that could not be checked yet; looked at once the launch is over.
	earlyNotes []notifyMsg
	// notify is the process's NOTIFY_SOCKET (ready = "notify"), nil
	// otherwise; statusText its last STATUS=, mainPid its MAINPID=.
	notify     *notifySocket
	statusText string
	mainPid    int
	// startAfterStop is set by a restart request while stopping.
	startAfterStop bool
	// stopTo is where a stop in progress ends: Stopped, or Paused for
	// ctl pause.
	stopTo State
	// retired is set by the final stop, when a reload replaces or
	// removes the service or udsvisor shuts down: from then on no
	// request may start a process with this definition (T26).
	retired bool
	// waiters are stop requests answered when the process is gone.
	waiters []chan error
	// launchWaiters are start and restart requests answered once the
	// next launch has told whether the command runs (or a stop
	// cancelled the restart).
	launchWaiters []launchWaiter
	// timer drives min_uptime, the back-off delay and stop_timeout;
	// helperTimer the launch helper's deadline. A nil channel (no timer
	// armed) never fires in the select.
	timer        *time.Timer
	timerC       <-chan time.Time
	timerAt      time.Time // when timer fires
	watchdog     *time.Timer
	watchdogC    <-chan time.Time
	helperTimer  *time.Timer
	helperTimerC <-chan time.Time
	// demand watches the listeners of a waiting on-demand service;
	// activity, with idle_stop, those of its running process, whose
	// idle timer asks checkIdle, which answers on idleChecked. Capacity
	// 1: one check is in flight at a time, and it never waits.
	demand      *listenerWatch
	demandC     <-chan struct{}
	activity    *listenerWatch
	idle        *time.Timer
	idleC       <-chan time.Time
	idleChecked chan idleCheck
	idleGen     int
	// watch looks for the starting process's first accept; acceptC is
	// its channel once the process runs the command, nil otherwise.
	watch   *acceptWatch
	acceptC <-chan struct{}

	// snap is the latest state, published by the run goroutine before
	// it answers any request, so that readers never wait for it.
	snap atomic.Pointer[Status]
}

// launchWaiter is a request waiting for a launch. failed says whether
// it wants to hear of a failed start (a restart does; a start does not).
type launchWaiter struct {
	reply  chan error
	failed bool
}

func newService(cfg *config.Service, files func() []*os.File, mend func(), env *shared, logs *logRing, log svcLog) *service {
	s := &service{
		shared:      env,
		cfg:         cfg,
		files:       files,
		mend:        mend,
		env:         childEnv(cfg),
		log:         log,
		logs:        logs,
		cmds:        make(chan request),
		exited:      make(chan Exit, 1),
		launched:    make(chan launchStep, 2),
		notified:    make(chan notifyMsg, 4),
		idleChecked: make(chan idleCheck, 1),
		done:        make(chan struct{}),
		st:          Stopped,
		since:       time.Now(),
	}
	s.publish()
	return s
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
		case step := <-s.launched:
			s.onLaunchStep(step)
		case m := <-s.notified:
			s.onNotify(m)
		case <-s.watchdogC:
			s.watchdog, s.watchdogC = nil, nil
			s.onWatchdog("no WATCHDOG=1 within watchdog")
		case <-s.timerC:
			s.timer, s.timerC = nil, nil
			s.onTimer()
		case <-s.helperTimerC:
			s.helperTimer, s.helperTimerC = nil, nil
			s.onHelperTimeout()
		case <-s.demandC:
			s.onDemand()
		case <-s.idleC:
			s.idle, s.idleC = nil, nil
			s.checkIdle()
		case c := <-s.idleChecked:
			s.onIdleChecked(c)
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
	s.snap.Store(&st)
	s.changed.notify()
}

// answer publishes the state, then replies: whoever gets the reply and
// then reads the status sees the state the reply speaks of.
func (s *service) answer(reply chan error, err error) {
	s.publish()
	reply <- err
}

func (s *service) status() Status {
	st := Status{
		Name: s.cfg.Name, State: s.st, Since: s.since,
		Restarts: s.restarts, Failures: s.failures,
		LastError: s.lastErr, Sockets: s.cfg.Sockets, StatusText: s.statusText,
	}
	// A process is shown once it runs the command: until then it is the
	// launch helper, which no caller may signal.
	if !s.launching {
		st.Pid, st.StartedAt, st.MainPid = s.pid, s.startedAt, s.mainPid
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
		s.answer(r.reply, nil)
	case opStart, opRestart, opResume, opActivate:
		if s.retired {
			// The final stop has begun: this definition never runs again.
			s.answer(r.reply, ErrReplaced)
		} else if r.op == opStart {
			s.start(r.reply)
		} else if r.op == opRestart {
			s.restart(r.reply)
		} else if r.op == opResume {
			s.resume(r.reply)
		} else {
			s.activate(r.reply)
		}
	case opStop:
		s.stop(r.reply)
	case opPause:
		s.pause(r.reply)
	case opRetire:
		s.retired = true
		s.stop(r.reply)
	case opSignal:
		// The helper is not the command yet: a signal for the command
		// (a reload, say) would kill it.
		if s.pid == 0 || s.launching {
			s.answer(r.reply, ErrNotRunning)
			return
		}
		s.answer(r.reply, s.reaper.signal(s.pid, r.sig))
	default:
		s.answer(r.reply, errInternal(r.op, s.st))
	}
}

func (s *service) arm(d time.Duration) {
	s.disarm()
	s.timer = time.NewTimer(d)
	s.timerC = s.timer.C
	s.timerAt = time.Now().Add(d)
}

func (s *service) disarm() {
	if s.timer != nil {
		s.timer.Stop()
	}
	// Dropped, not kept for reuse: an idle service holds no timer.
	s.timer, s.timerC = nil, nil
}
