// SPDX-License-Identifier: Apache-2.0

//go:build linux

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
	op  op
	sig unix.Signal     // for opSignal
	cfg *config.Service // for opReconfigure
	n   int             // for opScale
	// for opSave: where the state goes, and how its fds are numbered
	saved *SavedService
	add   func(fd int) int
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
	opScale
	// opAwaitStarted is answered once every instance has started, or
	// with the error of the first failed start (a reload's overlap).
	opAwaitStarted
	// opFreeze is answered once the service has settled and stands
	// still for a handover (handover.go); opSave writes it down and
	// opThaw lets it go on (or cancels a freeze still waiting).
	opFreeze
	opSave
	opThaw
)

func (o op) String() string {
	return [...]string{"start", "stop", "restart", "signal", "reconfigure", "retire", "pause", "resume",
		"activate", "scale", "await started", "freeze", "save", "thaw"}[o]
}

// shared is what every service of a Supervisor shares, set before the
// first service exists and never modified.
type shared struct {
	exe string // the launch helper (the udsvisor binary)
	// binary is the udsvisor binary's path, for a relay (Options.Binary).
	binary string
	// launcher forks the helper from a thread with a small fd table.
	launcher *privdrop.Launcher
	reaper   *reaper
	outs     *outputs
	// helperTimeout bounds the helper's work between fork and exec.
	helperTimeout time.Duration
	// changed is notified each time a service publishes a new state.
	changed *broadcast
}

// service runs one configured service: its instances, each a process
// supervised on its own. The fields below inbox are owned by the run
// goroutine: nothing else reads or writes them, and the run goroutine
// never blocks on anything but its select. Readers get the published
// snapshot instead.
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
	// inbox receives the events of the instances and watches.
	inbox *inbox

	// cfg is replaced only by opReconfigure, which the run goroutine
	// sends itself, so that it may read cfg between its requests.
	cfg *config.Service
	// insts are the instances: the current ones in index order, then
	// those on their way out (an overlapping restart's old ones, scale
	// down's highest indexes), dropped once their process is gone.
	insts []*instance
	// want is how many instances the service has: instances, or what
	// ctl scale set.
	want int
	// active is set from a start until a stop, pause or idle stop: the
	// restart policy applies to the instances. It stays set when every
	// instance has ended for good (failed, exited): nothing runs then,
	// though the service was not stopped.
	active bool
	// stopping is set while a stop waits for processes to end.
	stopping bool
	// rest is the service's state while it is not active and no
	// instance has a process: stopped, waiting (on demand) or paused.
	rest State
	// stopTo is where a stop in progress ends: stopped, paused or waiting.
	stopTo State
	// startAfterStop is set by a restart request while stopping,
	// activateAfterStop by a resume (an on-demand service then waits).
	startAfterStop, activateAfterStop bool
	// retired is set by the final stop, when a reload replaces or
	// removes the service or udsvisor shuts down: from then on no
	// request may start a process with this definition (T26).
	retired bool
	// waiters are stop and pause requests, answered when no instance has
	// a process.
	waiters []chan error
	// launchWaiters are start and restart requests answered once every
	// current instance's launch has told whether the command runs (or a
	// stop cancelled the restart).
	launchWaiters []launchWaiter
	// launchErr is the first failure of the launches launchWaiters wait
	// for.
	launchErr error
	// scaleWaiters are scale requests waiting for removed instances to
	// be gone.
	scaleWaiters []chan error
	// overlap is the overlapping restart in progress, nil if none.
	overlap *overlapRestart
	// startedWaiters are opAwaitStarted requests.
	startedWaiters []chan error
	// freezing is an opFreeze waiting for the service to settle.
	freezing chan error
	// adopting holds, for a service that an upgrade handed over, what
	// was left of each instance's timer, until run has armed them.
	adopting []time.Duration
	// demand watches the listeners of a waiting on-demand service;
	// activity, with idle_stop, those of its running processes, checked
	// at each idle period.
	demand    *listenerWatch
	demandGen int
	activity  *listenerWatch
	idle      *time.Timer
	idleGen   int

	// replacing is the service of the definition a reload's overlap is
	// replacing, while it serves; readers show its processes too.
	replacing atomic.Pointer[service]
	// since is when the published state was entered.
	since time.Time
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
		shared: env,
		cfg:    cfg,
		files:  files,
		mend:   mend,
		env:    childEnv(cfg),
		log:    log,
		logs:   logs,
		cmds:   make(chan request),
		done:   make(chan struct{}),
		inbox:  newInbox(),
		rest:   Stopped,
		want:   cfg.Instances,
	}
	for i := range cfg.Instances {
		s.insts = append(s.insts, s.newInstance(i))
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
	if s.adopting != nil {
		s.resumeAdopted()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-s.cmds:
			s.handle(r)
		case <-s.inbox.ready:
			for _, ev := range s.inbox.take() {
				s.onEvent(ev)
			}
		}
		s.publish()
		if s.freezing != nil && s.quiet() && !s.frozen(ctx) {
			return
		}
	}
}

// onEvent dispatches an event of the inbox.
func (s *service) onEvent(ev any) {
	switch ev := ev.(type) {
	case exitEvent:
		ev.inst.onExit(s, ev.ex)
	case launchStep:
		ev.inst.onLaunchStep(s, ev)
	case noted:
		ev.inst.onNotify(s, ev.msg)
	case timerFired:
		ev.inst.onTimerFired(s, ev)
	case accepted:
		ev.inst.onAccepted(s, ev)
	case demanded:
		s.onDemand(ev)
	case idleTick:
		s.checkIdle(ev.gen)
	case idleCheck:
		s.onIdleChecked(ev)
	default:
		s.log.Error("internal error: unknown event")
	}
}

// exitEvent is an Exit the reaper delivered for a process of inst. It
// names the instance, not just the pid, because it may come before the
// launch has told the instance its pid.
type exitEvent struct {
	inst *instance
	ex   Exit
}

// noted is a message a process of inst sent on its NOTIFY_SOCKET; it too
// may come before the launch has told the instance of the socket.
type noted struct {
	inst *instance
	msg  notifyMsg
}

// current returns the instances the service has, without those on their
// way out.
func (s *service) current() []*instance {
	cur := make([]*instance, 0, len(s.insts))
	for _, inst := range s.insts {
		if !inst.leaving() {
			cur = append(cur, inst)
		}
	}
	return cur
}

// publish makes the current state what Status readers see.
func (s *service) publish() {
	st := s.status()
	if prev := s.snap.Load(); prev == nil || prev.State != st.State {
		s.since = time.Now()
	}
	st.Since = s.since
	s.snap.Store(&st)
	s.changed.notify()
}

// answer publishes the state, then replies: whoever gets the reply and
// then reads the status sees the state the reply speaks of.
func (s *service) answer(reply chan error, err error) {
	s.publish()
	reply <- err
}

func (s *service) handle(r request) {
	switch r.op {
	case opReconfigure:
		// Only what does not touch the process may change here (socket
		// ownership, applied by the caller on the live socket).
		s.cfg = r.cfg
		s.answer(r.reply, nil)
	case opStart, opRestart, opResume, opActivate, opScale:
		if s.retired {
			// The final stop has begun: this definition never runs again.
			s.answer(r.reply, ErrReplaced)
			return
		}
		switch r.op {
		case opStart:
			s.start(r.reply)
		case opRestart:
			s.restart(r.reply)
		case opResume:
			s.resume(r.reply)
		case opActivate:
			s.activate(r.reply)
		default:
			s.scale(r.n, r.reply)
		}
	case opStop:
		s.stop(r.reply, Stopped)
	case opPause:
		s.pause(r.reply)
	case opRetire:
		s.retired = true
		s.stop(r.reply, Stopped)
	case opSignal:
		s.signal(r.sig, r.reply)
	case opAwaitStarted:
		s.awaitStarted(r.reply)
	case opFreeze:
		if !s.quiet() {
			s.answer(r.reply, errBusy)
			return
		}
		s.freezing = r.reply // answered by frozen, after this request
	case opThaw:
		if s.freezing != nil {
			s.answer(s.freezing, errors.New("handover cancelled"))
			s.freezing = nil
		}
		s.answer(r.reply, nil)
	default:
		s.answer(r.reply, errInternal(r.op, s.state()))
	}
}

// signal sends sig to the process group of every instance that runs the
// command; ErrNotRunning if none does.
func (s *service) signal(sig unix.Signal, reply chan error) {
	var err error = ErrNotRunning
	for _, inst := range s.insts {
		// The helper is not the command yet: a signal for the command
		// (a reload, say) would kill it.
		if inst.pid == 0 || inst.launching {
			continue
		}
		if e := s.reaper.signal(inst.pid, sig); e != nil {
			err = e
			break
		}
		err = nil
	}
	s.answer(reply, err)
}
