// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// The requests of the Supervisor's callers (the control API). Reads load
// the published view and the services' snapshots and never wait for a
// goroutine; actions are requests to the service's goroutine.

// current returns the latest view, waiting for the first one if Run has
// not created the services yet.
func (s *Supervisor) current(ctx context.Context) (*view, error) {
	v := s.view.Load()
	if v == nil {
		w := make(chan *view, 1) // the run goroutine answers without waiting
		select {
		case s.views <- w:
			v = <-w
		case <-s.done:
			return nil, ErrShuttingDown
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if v.closing {
		return nil, ErrShuttingDown
	}
	return v, nil
}

func (s *Supervisor) service(ctx context.Context, name string) (*service, error) {
	v, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	r, ok := v.services[name]
	if !ok {
		return nil, unknownService(name)
	}
	return r.svc, nil
}

func unknownService(name string) error {
	return fmt.Errorf("%w %q", ErrUnknownService, name)
}

// Status returns a copy of the named service's state, as last published
// by its goroutine (which may be busy launching a process).
func (s *Supervisor) Status(ctx context.Context, name string) (Status, error) {
	svc, err := s.service(ctx, name)
	if err != nil {
		return Status{}, err
	}
	return svc.snapshot(ctx)
}

// snapshot returns the latest published state.
func (svc *service) snapshot(ctx context.Context) (Status, error) {
	st := svc.snap.Load()
	select {
	case <-svc.done:
		return Status{}, unknownService(st.Name)
	default:
	}
	out := *st
	if old := svc.replacing.Load(); old != nil {
		withReplaced(&out, *old.snap.Load())
	}
	return out, ctx.Err()
}

// withReplaced adds to st the processes of old, the definition that a
// reload's overlap is replacing and that serves meanwhile: they are on
// their way out, and the service is in the best state of both.
func withReplaced(st *Status, old Status) {
	for _, in := range old.Instances {
		if in.Pid != 0 {
			in.Leaving = true
			st.Instances = append(slices.Clip(st.Instances), in)
		}
	}
	if better(old.State, st.State) {
		st.State = old.State
	}
}

// List returns the state of every service, sorted by name.
func (s *Supervisor) List(ctx context.Context) ([]Status, error) {
	v, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(v.services))
	for _, r := range v.services {
		st, err := r.svc.snapshot(ctx)
		if errors.Is(err, ErrUnknownService) {
			continue // removed by a reload meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Start starts a stopped, exited or failed service. It returns once the
// process runs the command, or failed to.
func (s *Supervisor) Start(ctx context.Context, name string) error {
	return s.do(ctx, name, request{op: opStart})
}

// Stop stops the service and returns once its process is gone.
func (s *Supervisor) Stop(ctx context.Context, name string) error {
	return s.do(ctx, name, request{op: opStop})
}

// Restart stops the service's process, if any, and starts a new one. The
// sockets stay bound throughout.
func (s *Supervisor) Restart(ctx context.Context, name string) error {
	return s.do(ctx, name, request{op: opRestart})
}

// Pause stops the service's process as Stop does and returns once it is
// gone; the service is then paused: its sockets stay bound, connections
// wait in their backlog, nothing restarts it (a reload neither), until
// Resume or Start.
func (s *Supervisor) Pause(ctx context.Context, name string) error {
	return s.do(ctx, name, request{op: opPause})
}

// Resume starts a paused service and returns once its process runs the
// command; ErrNotPaused for a service that is neither paused nor
// running.
func (s *Supervisor) Resume(ctx context.Context, name string) error {
	return s.do(ctx, name, request{op: opResume})
}

// Scale sets the number of the service's instances until the next
// reload that changes it: new ones start at once (if the service is
// running), and the highest indexes beyond n are stopped gracefully and
// dropped; it returns once the new ones run or the removed ones are gone.
// ErrBadScale unless 1 <= n <= config.MaxInstances.
func (s *Supervisor) Scale(ctx context.Context, name string, n int) error {
	return s.do(ctx, name, request{op: opScale, n: n})
}

// Signal sends sig to the process group of the service's running
// process; ErrNotRunning when there is none.
func (s *Supervisor) Signal(ctx context.Context, name string, sig unix.Signal) error {
	return s.do(ctx, name, request{op: opSignal, sig: sig})
}

func (s *Supervisor) do(ctx context.Context, name string, r request) error {
	svc, err := s.service(ctx, name)
	if err != nil {
		return err
	}
	err = svc.call(ctx, r)
	if errors.Is(err, errServiceGone) {
		return unknownService(name)
	}
	// Callers (the control API, ctl) name the action and service.
	return err
}

// Logs returns the newest n lines the service wrote (all kept if n <= 0).
func (s *Supervisor) Logs(ctx context.Context, name string, n int) ([]LogLine, error) {
	svc, err := s.service(ctx, name)
	if err != nil {
		return nil, err
	}
	return svc.logs.last(n), nil
}

// Follow streams the lines the service writes from now on, until ctx is
// done; then the channel is closed. A follower that falls behind misses
// lines rather than slowing the service.
func (s *Supervisor) Follow(ctx context.Context, name string) (<-chan LogLine, error) {
	svc, err := s.service(ctx, name)
	if err != nil {
		return nil, err
	}
	ch, cancel := svc.logs.subscribe()
	go func() {
		<-ctx.Done()
		cancel()
	}()
	return ch, nil
}
