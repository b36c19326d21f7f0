// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/udsvisor/udsvisor/sockets"
)

// An upgrade re-executes udsvisor in the same process (cmd/udsvisor
// upgrade.go). Handover brings the supervisor to a standstill in which its
// whole state can be written down: every service settled (no launch in
// flight, no stop, restart, scale or overlap under way), no event being
// handled, nothing reaped (an exit stays a zombie for the next program),
// no output or notify message read (it stays queued in its pipe or
// socket). The state is Saved; its fds are passed through the exec, and
// Adopt (adopt.go) makes a Supervisor of them in the new program. If the
// exec does not happen, Thaw lets everything go on as before.

// Saved is a Supervisor's state on its way through an upgrade. Every fd
// is named by its index in Handover.FDs. It is written by udsvisor for
// udsvisor, but Adopt checks it as if it came from anywhere (T24).
type Saved struct {
	Sockets  []SavedSocket  `json:"sockets"`
	Services []SavedService `json:"services"`
	Outputs  []SavedOutput  `json:"outputs"`
}

// SavedSocket is a listener of the pool, by its socketKey.
type SavedSocket struct {
	Key string `json:"key"`
	sockets.Saved
}

// SavedService is a service's own state.
type SavedService struct {
	Name      string          `json:"name"`
	Want      int             `json:"want"`
	Active    bool            `json:"active"`
	Rest      State           `json:"rest"`
	Instances []SavedInstance `json:"instances"`
	// Logs are the newest lines of its output, for ctl logs.
	Logs []LogLine `json:"logs,omitempty"`
}

// savedLogBytes bounds the output lines of all services in a hand-over;
// each service gets an equal share, at least minSavedLogBytes.
const (
	savedLogBytes    = 4 << 20
	minSavedLogBytes = 4 << 10
)

// SavedInstance is one instance and its process, if it has one.
type SavedInstance struct {
	Index      int       `json:"index"`
	State      State     `json:"state"`
	Since      time.Time `json:"since"`
	Pid        int       `json:"pid,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	MainPid    int       `json:"main_pid,omitempty"`
	Restarts   int       `json:"restarts"`
	Failures   int       `json:"failures"`
	Started    bool      `json:"started"`
	LastError  string    `json:"last_error,omitempty"`
	LastExit   *Exit     `json:"last_exit,omitempty"`
	StatusText string    `json:"status_text,omitempty"`
	// Notify is the fd index of the process's NOTIFY_SOCKET, -1 if none.
	Notify int `json:"notify"`
	// TimerLeft is what was left of the min_uptime, start_timeout or
	// back-off timer.
	TimerLeft time.Duration `json:"timer_left,omitempty"`
}

// SavedOutput is the read end of a child's stdout or stderr pipe.
type SavedOutput struct {
	Service string `json:"service"`
	Index   int    `json:"index"`
	Pid     int    `json:"pid"`
	Stream  string `json:"stream"`
	FD      int    `json:"fd"`
}

// Handover is a supervisor at a standstill and its state.
type Handover struct {
	Saved Saved
	// FDs are the fds Saved names, by index; they stay open and
	// untouched until Thaw.
	FDs []int
	// thaw is closed by Thaw; thawed once everything goes on again.
	thaw, thawed chan struct{}
	once         sync.Once
}

// Thaw lets the supervisor go on after an exec that did not happen.
func (h *Handover) Thaw() {
	h.once.Do(func() { close(h.thaw) })
	<-h.thawed
}

type handoverRequest struct {
	ctx   context.Context
	base  int
	reply chan handoverReply // capacity 1
}

type handoverReply struct {
	h   *Handover
	err error
}

// settleRetry is the pause between attempts to catch every service
// settled at once.
const settleRetry = 50 * time.Millisecond

// ConfigSHA256 is the digest of the config file's bytes that the
// services run (config.Config.SHA256): the first config's until Run
// has published, then the one of the last reload.
func (s *Supervisor) ConfigSHA256() [32]byte {
	if v := s.view.Load(); v != nil {
		return v.cfg.SHA256
	}
	return s.cfg.SHA256
}

// Stale returns the services that still run their definition from
// before the last reload, whose new one did not start (restart_mode =
// "overlap"): ConfigSHA256's file does not describe what they run.
func (s *Supervisor) Stale() []string {
	if v := s.view.Load(); v != nil {
		return slices.Clone(v.stale)
	}
	return nil
}

// Handover brings the supervisor to a standstill and returns its state,
// waiting until ctx is done for every service to settle. Saved numbers
// fds from base: index base+i is FDs[i]. Until Thaw the supervisor does
// nothing: it takes no request, reaps no child and reads no output; a
// shutdown (Run's ctx) thaws it first.
func (s *Supervisor) Handover(ctx context.Context, base int) (*Handover, error) {
	req := handoverRequest{ctx: ctx, base: base, reply: make(chan handoverReply, 1)}
	select {
	case s.handovers <- req:
	case <-s.done:
		return nil, ErrShuttingDown
	case <-ctx.Done():
		return nil, fmt.Errorf("udsvisor is still starting its services: %w", ctx.Err())
	}
	r := <-req.reply
	return r.h, r.err
}

// handover serves a Handover request on the run goroutine, and holds it
// until the handover is thawed (or the process is replaced).
func (s *Supervisor) handover(ctx context.Context, r *runner, req handoverRequest) {
	for {
		h, err := s.tryHandover(req.ctx, r, req.base)
		if errors.Is(err, errBusy) {
			select {
			case <-time.After(settleRetry):
				continue
			case <-req.ctx.Done():
				err = fmt.Errorf("the services never settled all at once (%w): %w", err, req.ctx.Err())
			case <-ctx.Done():
				err = ErrShuttingDown
			}
		}
		if err != nil {
			req.reply <- handoverReply{err: err}
			return
		}
		req.reply <- handoverReply{h: h}
		// Only Thaw ends the standstill, even at shutdown: the caller
		// decides whether the exec happens.
		<-h.thaw
		s.thawAll(r)
		close(h.thawed)
		return
	}
}

// errBusy: a service was not settled (starting, stopping, scaling)
// when asked to stand still, or was busy again when its state was taken.
var errBusy = errors.New("a service is busy")

// busyError names the services that were busy.
type busyError struct{ names []string }

func (e *busyError) Error() string {
	return "services busy (starting, stopping, restarting or scaling): " + strings.Join(e.names, ", ")
}

func (e *busyError) Unwrap() error { return errBusy }

func (s *Supervisor) tryHandover(ctx context.Context, r *runner, base int) (*Handover, error) {
	svcs := r.sorted()
	errs := make([]error, len(svcs))
	var wg sync.WaitGroup
	for i, rs := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = rs.svc.call(ctx, request{op: opFreeze})
		}()
	}
	wg.Wait()
	var busy []string
	for i, err := range errs {
		switch {
		case errors.Is(err, errBusy):
			busy = append(busy, svcs[i].svc.cfg.Name)
		case err != nil:
			s.thawAll(r)
			return nil, fmt.Errorf("service %s: %w", svcs[i].svc.cfg.Name, err)
		}
	}
	if len(busy) > 0 {
		s.thawAll(r)
		return nil, &busyError{names: busy}
	}
	s.reaper.freeze()
	r.release = r.env.outs.hold()
	h := &Handover{thaw: make(chan struct{}), thawed: make(chan struct{})}
	add := func(fd int) int {
		h.FDs = append(h.FDs, fd)
		return base + len(h.FDs) - 1
	}
	for _, rs := range svcs {
		sv := &SavedService{}
		err := rs.svc.call(ctx, request{op: opSave, saved: sv, add: add})
		if err != nil {
			s.thawAll(r)
			return nil, err
		}
		h.Saved.Services = append(h.Saved.Services, *sv)
	}
	budget := max(savedLogBytes/max(len(svcs), 1), minSavedLogBytes)
	for i, rs := range svcs {
		h.Saved.Services[i].Logs = newest(rs.svc.logs.last(0), budget)
	}
	h.Saved.Outputs = r.env.outs.save(add)
	pool := make([]string, 0, len(r.pool))
	for key := range r.pool {
		pool = append(pool, key)
	}
	sort.Slice(pool, func(i, j int) bool { return r.pool[pool[i]].seq < r.pool[pool[j]].seq })
	for _, key := range pool {
		sv, err := r.pool[key].Save(add)
		if err != nil {
			s.thawAll(r)
			return nil, err
		}
		h.Saved.Sockets = append(h.Saved.Sockets, SavedSocket{Key: key, Saved: sv})
	}
	s.log.Info("upgrade: services handed over", zap.Int("services", len(svcs)), zap.Int("fds", len(h.FDs)))
	return h, nil
}

// thawAll undoes a handover, or what of it was done.
func (s *Supervisor) thawAll(r *runner) {
	if r.release != nil {
		r.release()
		r.release = nil
	}
	s.reaper.thaw()
	for _, rs := range r.services {
		if err := rs.svc.call(context.Background(), request{op: opThaw}); err != nil && !errors.Is(err, errServiceGone) {
			rs.svc.log.Error("thaw", zap.Error(err))
		}
	}
}

// sorted returns the services by name.
func (r *runner) sorted() []*running {
	rs := values(r.services)
	sort.Slice(rs, func(i, j int) bool { return rs[i].svc.cfg.Name < rs[j].svc.cfg.Name })
	return rs
}

// quiet reports whether the service has settled: nothing under way that
// the next program could not take up where it stands.
func (s *service) quiet() bool {
	if s.stopping || s.overlap != nil || s.retired ||
		len(s.waiters)+len(s.launchWaiters)+len(s.scaleWaiters)+len(s.startedWaiters) > 0 {
		return false
	}
	for _, inst := range s.insts {
		if inst.launching || inst.leaving() || inst.st == Stopping || inst.early != nil {
			return false
		}
	}
	return len(s.insts) == s.want
}

// frozen holds the settled service still for a handover: its notify
// readers stop, its events wait in the inbox, and it answers only opSave
// and opThaw (anything else: ErrUpgrading). It returns false if ctx ended
// meanwhile.
func (s *service) frozen(ctx context.Context) bool {
	for _, inst := range s.insts {
		if inst.notify != nil {
			inst.notify.pause()
		}
	}
	since := time.Now()
	s.answer(s.freezing, nil)
	s.freezing = nil
	for {
		select {
		case <-ctx.Done():
			return false
		case r := <-s.cmds:
			switch r.op {
			case opSave:
				s.rearm(since)
				s.answer(r.reply, s.save(r.saved, r.add))
			case opThaw:
				s.rearm(since)
				for _, inst := range s.insts {
					if inst.notify != nil && inst.notify.paused.Load() {
						inst.notify.start(inst.notify.post)
					}
				}
				s.answer(r.reply, nil)
				return true
			default:
				s.answer(r.reply, ErrUpgrading)
			}
		}
	}
}

// rearm gives the timers back the time the service stood still since
// then: a process could not be heard meanwhile (its READY=1 and
// WATCHDOG=1 wait in its notify socket), so a deadline that passed must
// not kill it. A fire already queued becomes stale.
func (s *service) rearm(since time.Time) {
	for _, inst := range s.insts {
		if inst.armed(timerWatchdog) {
			inst.armWatchdog(s)
		}
		if inst.armed(timerMain) {
			inst.arm(s, timerMain, max(inst.timerAt.Sub(since), 0))
		}
	}
}

// save writes the frozen service down, once the events that came before
// the standstill have been handled; errBusy if they made it busy.
func (s *service) save(sv *SavedService, add func(int) int) error {
	for _, ev := range s.inbox.take() {
		s.onEvent(ev)
	}
	s.publish()
	if !s.quiet() {
		return errBusy
	}
	for _, inst := range s.insts {
		if inst.notify != nil && !inst.notify.paused.Load() {
			inst.notify.pause() // a process started while frozen
		}
	}
	*sv = SavedService{Name: s.cfg.Name, Want: s.want, Active: s.active, Rest: s.rest}
	for _, inst := range s.insts {
		si := SavedInstance{
			Index: inst.index, State: inst.st, Since: inst.since, Pid: inst.pid, StartedAt: inst.startedAt,
			MainPid: inst.mainPid, Restarts: inst.restarts, Failures: inst.failures, Started: inst.started,
			LastError: fitText(inst.lastErr, maxSavedText), LastExit: inst.lastExit,
			StatusText: fitText(inst.statusText, maxSavedText), Notify: -1,
		}
		if inst.notify != nil {
			si.Notify = add(inst.notify.fd())
		}
		if inst.armed(timerMain) {
			si.TimerLeft = max(time.Until(inst.timerAt), 0)
		}
		sv.Instances = append(sv.Instances, si)
	}
	return nil
}

// newest returns the newest lines of ls whose text fits in budget bytes,
// each made valid UTF-8 within maxLine bytes: what Adopt accepts once
// JSON has been through it.
func newest(ls []LogLine, budget int) []LogLine {
	i := len(ls)
	for i > 0 && len(ls[i-1].Line) <= budget {
		i--
		budget -= len(ls[i].Line)
	}
	out := append([]LogLine(nil), ls[i:]...)
	for j := range out {
		out[j].Line = fitText(out[j].Line, maxLine)
	}
	return out
}

// fitText makes s valid UTF-8 (JSON would replace each bad byte with
// three) and cuts it, at a character's start, to at most n bytes.
func fitText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// save writes down the pipes being read, while held.
func (o *outputs) save(add func(int) int) []SavedOutput {
	o.mu.Lock()
	defer o.mu.Unlock()
	fds := make([]int, 0, len(o.pipes))
	for fd := range o.pipes {
		fds = append(fds, int(fd))
	}
	sort.Ints(fds)
	saved := make([]SavedOutput, 0, len(fds))
	for _, fd := range fds {
		out := o.pipes[int32(fd)]
		saved = append(saved, SavedOutput{Service: out.svc, Index: out.index, Pid: out.pid, Stream: out.stream, FD: add(fd)})
	}
	return saved
}
