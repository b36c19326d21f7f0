package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/config"
)

// waitReady waits until Run has created the first services.
func (s *Supervisor) waitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Supervisor) service(ctx context.Context, name string) (*service, error) {
	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closing {
		return nil, ErrShuttingDown
	}
	r, ok := s.services[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownService, name)
	}
	return r.svc, nil
}

// Status returns a copy of the named service's state.
func (s *Supervisor) Status(ctx context.Context, name string) (Status, error) {
	svc, err := s.service(ctx, name)
	if err != nil {
		return Status{}, err
	}
	return svc.statusOf(ctx)
}

// statusOf returns the service's latest published state without waiting
// for its goroutine, which may be busy launching a process.
func (svc *service) statusOf(ctx context.Context) (Status, error) {
	snap, err := svc.snapshot(ctx)
	return snap.st, err
}

// snapshot returns the latest published snapshot.
func (svc *service) snapshot(ctx context.Context) (*snapshot, error) {
	snap := svc.snap.Load()
	select {
	case <-svc.done:
		return nil, fmt.Errorf("%w: %q", ErrUnknownService, snap.st.Name)
	default:
	}
	return snap, ctx.Err()
}

// Start starts a stopped, exited or failed service.
func (s *Supervisor) Start(ctx context.Context, name string) error {
	return s.do(ctx, name, opStart, 0)
}

// Stop stops the service and returns once its process is gone.
func (s *Supervisor) Stop(ctx context.Context, name string) error { return s.do(ctx, name, opStop, 0) }

// Restart stops the service's process, if any, and starts a new one. The
// sockets stay bound throughout.
func (s *Supervisor) Restart(ctx context.Context, name string) error {
	return s.do(ctx, name, opRestart, 0)
}

// Signal sends sig to the process group of the service's running
// process; ErrNotRunning when there is none.
func (s *Supervisor) Signal(ctx context.Context, name string, sig unix.Signal) error {
	return s.do(ctx, name, opSignal, sig)
}

func (s *Supervisor) do(ctx context.Context, name string, o op, sig unix.Signal) error {
	svc, err := s.service(ctx, name)
	if err != nil {
		return err
	}
	err = svc.call(ctx, request{op: o, sig: sig})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errServiceGone):
		return fmt.Errorf("%w: %q", ErrUnknownService, name)
	default:
		// Callers (the control API, ctl) name the action and service.
		return err
	}
}

// List returns every service for the control API, sorted by name.
func (s *Supervisor) List(ctx context.Context) ([]api.Service, error) {
	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	s.mu.RLock()
	closing, services := s.closing, s.services
	s.mu.RUnlock()
	if closing {
		return nil, ErrShuttingDown
	}
	// One consistent set: the map is replaced as a whole by a reload,
	// never changed in place.
	snaps := make([]*snapshot, 0, len(services))
	for _, r := range services {
		snap, err := r.svc.snapshot(ctx)
		if errors.Is(err, ErrUnknownService) {
			continue // removed by a reload meanwhile
		}
		if err != nil {
			return nil, err
		}
		snaps = append(snaps, snap)
	}
	slices.SortFunc(snaps, func(a, b *snapshot) int { return strings.Compare(a.st.Name, b.st.Name) })
	out := make([]api.Service, len(snaps))
	for i, snap := range snaps {
		out[i] = withUptime(snap.api)
	}
	return out, nil
}

// withUptime sets a.UptimeSeconds for now.
func withUptime(a api.Service) api.Service {
	if a.StartedAt != nil {
		a.UptimeSeconds = time.Since(*a.StartedAt).Seconds()
	}
	return a
}

// Get returns one service for the control API.
func (s *Supervisor) Get(ctx context.Context, name string) (api.Service, error) {
	svc, err := s.service(ctx, name)
	if err != nil {
		return api.Service{}, err
	}
	snap, err := svc.snapshot(ctx)
	if err != nil {
		return api.Service{}, err
	}
	return withUptime(snap.api), nil
}

// Logs returns the newest n lines the service wrote (all kept if n <= 0).
func (s *Supervisor) Logs(ctx context.Context, name string, n int) ([]api.LogLine, error) {
	svc, err := s.service(ctx, name)
	if err != nil {
		return nil, err
	}
	return svc.logs.last(n), nil
}

// Follow streams the lines the service writes from now on, until ctx is
// done; then the channel is closed. A follower that falls behind misses
// lines rather than slowing the service.
func (s *Supervisor) Follow(ctx context.Context, name string) (<-chan api.LogLine, error) {
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

// toAPI is st as the control API shows it, but for UptimeSeconds, which
// is the reader's to compute. sockets is apiSockets(st.cfg), shared by
// every snapshot of the same config: nobody modifies it.
func toAPI(st Status, sockets []api.Socket) api.Service {
	a := api.Service{
		Name: st.Name, State: string(st.State), Since: st.Since, Pid: st.Pid, Pids: []int{},
		Restarts: st.Restarts, Failures: st.Failures, LastError: st.LastError, Sockets: sockets,
	}
	if st.Pid != 0 {
		started := st.StartedAt
		a.Pids = []int{st.Pid}
		a.Instances = 1
		a.StartedAt = &started
	}
	if ex := st.LastExit; ex != nil {
		e := &api.Exit{Pid: ex.Pid, Time: ex.Time, Description: ex.String()}
		if ex.Status.Exited() {
			code := ex.Status.ExitStatus()
			e.Code = &code
		} else if ex.Status.Signaled() {
			e.Signal = unix.SignalName(ex.Status.Signal())
		}
		a.LastExit = e
	}
	return a
}

// apiSockets is how the control API shows the sockets of cfg.
func apiSockets(cfg *config.Service) []api.Socket {
	socks := make([]api.Socket, 0, len(cfg.Sockets))
	for _, c := range cfg.Sockets {
		sock := api.Socket{Name: c.Name, FD: 3 + c.Index}
		if c.IsUnix() {
			sock.Path = c.Path
			sock.Owner = c.OwnerName
			sock.Group = c.GroupName
			sock.Mode = fmt.Sprintf("%04o", c.Mode)
		} else {
			sock.Address = c.Addr.String()
		}
		socks = append(socks, sock)
	}
	return socks
}
