// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Package fakesup is the one fake supervisor of udsvisor's tests: an
// in-memory control.Backend that keeps enough state to show what a
// request changed, and records every call the control server made. The
// control server, the client and ctl are tested against the real server
// driving it (package controltest); the real supervisor is tested end to
// end in its own package and cmd/udsvisor.
//
// It answers as the supervisor does: an unknown name is
// supervisor.ErrUnknownService, a signal to a service without a process is
// supervisor.ErrNotRunning, and a follower that falls behind misses lines.
// It does not import package control, whose own tests use it.
package fakesup

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/supervisor"
)

// Supervisor is a fake supervisor. It is safe for concurrent use.
type Supervisor struct {
	mu      sync.Mutex
	svcs    map[string]*supervisor.Status
	signals map[string][]unix.Signal
	logs    map[string][]supervisor.LogLine
	subs    map[string][]chan supervisor.LogLine
	calls   []string
	// changed is closed, and replaced, whenever a follower comes or goes
	// (WaitFollowers).
	changed   chan struct{}
	reload    supervisor.ReloadResult
	reloadErr error
	actionErr error
	nextPid   int
	// scales are the numbers of instances ctl scale set (1 if unset).
	scales map[string]int
	// upgrade is what the upgrade endpoints answer; Upgrade counts one
	// more upgrade in it unless upgradeErr is set.
	upgrade    api.Upgrade
	upgradeErr error
}

// New returns a fake supervising services, as they are given. A service
// with a Pid runs; Start and Restart give a process pid 2001, 2002 and so
// on.
func New(services ...supervisor.Status) *Supervisor {
	f := &Supervisor{
		svcs:    make(map[string]*supervisor.Status, len(services)),
		signals: map[string][]unix.Signal{},
		logs:    map[string][]supervisor.LogLine{},
		subs:    map[string][]chan supervisor.LogLine{},
		changed: make(chan struct{}),
		nextPid: 2000,
		scales:  map[string]int{},
	}
	for _, st := range services {
		f.svcs[st.Name] = &st
	}
	return f
}

// Calls returns the calls the fake received, oldest first, one per call
// as "Method name args": "List", "Status web", "Restart web", "Signal web
// SIGHUP", "Logs web 5", "Follow web", "Reload".
func (f *Supervisor) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Service returns a copy of name's state, the zero Status if there is no
// such service.
func (f *Supervisor) Service(name string) supervisor.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	if svc, ok := f.svcs[name]; ok {
		return *svc
	}
	return supervisor.Status{}
}

// Signals returns the signals name's process received, oldest first.
func (f *Supervisor) Signals(name string) []unix.Signal {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.signals[name])
}

// SetReload sets what Reload returns from now on.
func (f *Supervisor) SetReload(res supervisor.ReloadResult, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reload, f.reloadErr = res, err
}

// SetUpgrade sets what UpgradeStatus answers, and the error Upgrade
// returns (nil: an upgrade begins, and UpgradeStatus then counts it).
func (f *Supervisor) SetUpgrade(st api.Upgrade, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.upgrade, f.upgradeErr = st, err
}

// Upgrade implements control.Upgrader: it returns the state before and,
// unless SetUpgrade gave an error, counts an upgrade as done at once.
func (f *Supervisor) Upgrade(context.Context) (api.Upgrade, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Upgrade")
	before := f.upgrade
	if f.upgradeErr == nil {
		f.upgrade.Upgrades++
	}
	return before, f.upgradeErr
}

// UpgradeStatus implements control.Upgrader.
func (f *Supervisor) UpgradeStatus() api.Upgrade {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("UpgradeStatus")
	return f.upgrade
}

// FailActions makes the actions (Start, Stop, Restart, Pause, Resume) of
// a known service return err
// from now on without acting (nil: act again).
func (f *Supervisor) FailActions(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actionErr = err
}

// Log adds l to name's output, as the supervisor's output reader would,
// and streams it to name's followers.
func (f *Supervisor) Log(name string, l supervisor.LogLine) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs[name] = append(f.logs[name], l)
	for _, ch := range f.subs[name] {
		select {
		case ch <- l:
		default: // fallen behind: the line is lost to it, as in the supervisor
		}
	}
}

// WaitFollowers waits until exactly n Follow streams of name are open: a
// line logged once a follower is counted reaches it, and a count of 0
// shows that the server let go of its streams.
func (f *Supervisor) WaitFollowers(ctx context.Context, name string, n int) error {
	for {
		f.mu.Lock()
		got, changed := len(f.subs[name]), f.changed
		f.mu.Unlock()
		if got == n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%s has %d followers, want %d: %w", name, got, n, ctx.Err())
		}
	}
}

// withInstances is a copy of svc with its instances, as the supervisor
// shows them: instance 0 is the service's own process, and each further
// one (after Scale) runs beside it with the next pid; f.mu is held.
func (f *Supervisor) withInstances(svc *supervisor.Status) supervisor.Status {
	st := *svc
	if st.Instances != nil {
		return st
	}
	n := max(f.scales[st.Name], 1)
	st.Wanted = n
	for i := range n {
		in := supervisor.InstanceStatus{Index: i, State: st.State, Since: st.Since}
		if st.Pid != 0 {
			in.Pid, in.StartedAt = st.Pid+i, st.StartedAt
		}
		if i == 0 {
			in.Restarts, in.Failures, in.LastExit, in.LastError = st.Restarts, st.Failures, st.LastExit, st.LastError
		}
		st.Instances = append(st.Instances, in)
	}
	return st
}

// Scale sets name's number of instances; supervisor.ErrBadScale out of
// range, as the supervisor answers.
func (f *Supervisor) Scale(_ context.Context, name string, n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Scale", name, strconv.Itoa(n))
	if _, err := f.lookup(name); err != nil {
		return err
	}
	if n < 1 || n > config.MaxInstances {
		return fmt.Errorf("%w: %d is not 1 to %d", supervisor.ErrBadScale, n, config.MaxInstances)
	}
	f.scales[name] = n
	return nil
}

// record notes a call; f.mu is held.
func (f *Supervisor) record(call ...string) {
	f.calls = append(f.calls, strings.Join(call, " "))
}

// lookup returns name's state; f.mu is held.
func (f *Supervisor) lookup(name string) (*supervisor.Status, error) {
	svc, ok := f.svcs[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", supervisor.ErrUnknownService, name)
	}
	return svc, nil
}

// List returns every service, sorted by name.
func (f *Supervisor) List(context.Context) ([]supervisor.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("List")
	out := make([]supervisor.Status, 0, len(f.svcs))
	for _, svc := range f.svcs {
		out = append(out, f.withInstances(svc))
	}
	slices.SortFunc(out, func(a, b supervisor.Status) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Status returns a copy of name's state.
func (f *Supervisor) Status(_ context.Context, name string) (supervisor.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Status", name)
	svc, err := f.lookup(name)
	if err != nil {
		return supervisor.Status{}, err
	}
	return f.withInstances(svc), nil
}

// Start gives name a process unless it has one.
func (f *Supervisor) Start(_ context.Context, name string) error {
	return f.act("Start", name, func(svc *supervisor.Status) error {
		if svc.Pid == 0 {
			f.run(svc)
		}
		return nil
	})
}

// Stop takes name's process away.
func (f *Supervisor) Stop(_ context.Context, name string) error {
	return f.act("Stop", name, func(svc *supervisor.Status) error {
		svc.State, svc.Since, svc.Pid, svc.StartedAt = supervisor.Stopped, time.Now(), 0, time.Time{}
		return nil
	})
}

// Pause takes name's process away and leaves it paused.
func (f *Supervisor) Pause(_ context.Context, name string) error {
	return f.act("Pause", name, func(svc *supervisor.Status) error {
		svc.State, svc.Since, svc.Pid, svc.StartedAt = supervisor.Paused, time.Now(), 0, time.Time{}
		return nil
	})
}

// Resume gives a paused name a process; supervisor.ErrNotPaused for one
// that is neither paused nor running, as the supervisor answers.
func (f *Supervisor) Resume(_ context.Context, name string) error {
	return f.act("Resume", name, func(svc *supervisor.Status) error {
		switch {
		case svc.State == supervisor.Paused:
			f.run(svc)
		case svc.Pid == 0:
			return supervisor.ErrNotPaused
		}
		return nil
	})
}

// Restart gives name a new process, counting a restart if it had one.
func (f *Supervisor) Restart(_ context.Context, name string) error {
	return f.act("Restart", name, func(svc *supervisor.Status) error {
		if svc.Pid != 0 {
			svc.Restarts++
		}
		f.run(svc)
		return nil
	})
}

// act records and does an action on name, or fails as FailActions said.
func (f *Supervisor) act(method, name string, do func(*supervisor.Status) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record(method, name)
	svc, err := f.lookup(name)
	if err != nil {
		return err
	}
	if f.actionErr != nil {
		return f.actionErr
	}
	return do(svc)
}

// run sets svc running with a new pid, which ends its run of failed
// starts; f.mu is held.
func (f *Supervisor) run(svc *supervisor.Status) {
	f.nextPid++
	now := time.Now()
	svc.State, svc.Since, svc.Pid, svc.StartedAt = supervisor.Running, now, f.nextPid, now
	svc.Failures, svc.LastError = 0, ""
}

// Signal records sig as received by name's process, if it has one.
func (f *Supervisor) Signal(_ context.Context, name string, sig unix.Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Signal", name, unix.SignalName(sig))
	svc, err := f.lookup(name)
	if err != nil {
		return err
	}
	if svc.Pid == 0 {
		return supervisor.ErrNotRunning
	}
	f.signals[name] = append(f.signals[name], sig)
	return nil
}

// Logs returns the last n lines logged for name (n <= 0: all).
func (f *Supervisor) Logs(_ context.Context, name string, n int) ([]supervisor.LogLine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Logs", name, fmt.Sprint(n))
	if _, err := f.lookup(name); err != nil {
		return nil, err
	}
	lines := f.logs[name]
	if n > 0 && n < len(lines) {
		lines = lines[len(lines)-n:]
	}
	return slices.Clone(lines), nil
}

// Follow streams the lines logged for name from now on until ctx is done,
// then closes the channel.
func (f *Supervisor) Follow(ctx context.Context, name string) (<-chan supervisor.LogLine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Follow", name)
	if _, err := f.lookup(name); err != nil {
		return nil, err
	}
	ch := make(chan supervisor.LogLine, 64) // Log never blocks; a follower that falls this far behind misses lines
	f.subs[name] = append(f.subs[name], ch)
	f.notify()
	context.AfterFunc(ctx, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.subs[name] = slices.DeleteFunc(f.subs[name], func(c chan supervisor.LogLine) bool { return c == ch })
		close(ch) // under f.mu, so Log never sends on it closed
		f.notify()
	})
	return ch, nil
}

// notify wakes WaitFollowers; f.mu is held.
func (f *Supervisor) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// Reload returns what SetReload set.
func (f *Supervisor) Reload(context.Context) (supervisor.ReloadResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Reload")
	return f.reload, f.reloadErr
}
