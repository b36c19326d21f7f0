package control

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/supervisor"
)

// fakeBackend is an in-memory supervisor: enough state to see what a
// request changed. The real supervisor is tested end to end elsewhere.
type fakeBackend struct {
	mu      sync.Mutex
	svcs    map[string]*supervisor.Status
	signals map[string][]unix.Signal
	logs    map[string][]supervisor.LogLine
	subs    map[string][]chan supervisor.LogLine
	// reload is what Reload returns.
	reload    supervisor.ReloadResult
	reloadErr error
	reloads   int
	// actionErr, when set, is what Start, Stop and Restart return.
	actionErr error
	nextPid   int
}

// newFake returns a backend with "web" running and "db" stopped.
func newFake() *fakeBackend {
	started := time.Unix(1700000000, 500_000_000)
	return &fakeBackend{
		svcs: map[string]*supervisor.Status{
			"web": {Name: "web", State: supervisor.Running, Pid: 1000, StartedAt: started},
			"db":  {Name: "db", State: supervisor.Stopped},
		},
		signals: map[string][]unix.Signal{},
		logs:    map[string][]supervisor.LogLine{},
		subs:    map[string][]chan supervisor.LogLine{},
		nextPid: 2000,
	}
}

func (f *fakeBackend) lookup(name string) (*supervisor.Status, error) {
	svc, ok := f.svcs[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", supervisor.ErrUnknownService, name)
	}
	return svc, nil
}

func (f *fakeBackend) List(context.Context) ([]supervisor.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []supervisor.Status
	for _, svc := range f.svcs {
		out = append(out, *svc)
	}
	slices.SortFunc(out, func(a, b supervisor.Status) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (f *fakeBackend) Status(_ context.Context, name string) (supervisor.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	svc, err := f.lookup(name)
	if err != nil {
		return supervisor.Status{}, err
	}
	return *svc, nil
}

// run sets svc running with a new pid.
func (f *fakeBackend) run(svc *supervisor.Status) {
	f.nextPid++
	svc.State, svc.Pid, svc.StartedAt = supervisor.Running, f.nextPid, time.Now()
}

func (f *fakeBackend) Start(_ context.Context, name string) error {
	return f.act(name, func(svc *supervisor.Status) {
		if svc.Pid == 0 {
			f.run(svc)
		}
	})
}

func (f *fakeBackend) Stop(_ context.Context, name string) error {
	return f.act(name, func(svc *supervisor.Status) {
		svc.State, svc.Pid, svc.StartedAt = supervisor.Stopped, 0, time.Time{}
	})
}

func (f *fakeBackend) Restart(_ context.Context, name string) error {
	return f.act(name, func(svc *supervisor.Status) {
		if svc.Pid != 0 {
			svc.Restarts++
		}
		f.run(svc)
	})
}

func (f *fakeBackend) act(name string, do func(*supervisor.Status)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	svc, err := f.lookup(name)
	if err != nil {
		return err
	}
	if f.actionErr != nil {
		return f.actionErr
	}
	do(svc)
	return nil
}

func (f *fakeBackend) Signal(_ context.Context, name string, sig unix.Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	svc, err := f.lookup(name)
	if err != nil {
		return err
	}
	if svc.Pid == 0 {
		return fmt.Errorf("signal %s: %w", name, supervisor.ErrNotRunning)
	}
	f.signals[name] = append(f.signals[name], sig)
	return nil
}

// signalsOf returns the signals name received.
func (f *fakeBackend) signalsOf(name string) []unix.Signal {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.signals[name])
}

func (f *fakeBackend) Logs(_ context.Context, name string, n int) ([]supervisor.LogLine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.lookup(name); err != nil {
		return nil, err
	}
	lines := f.logs[name]
	if n > 0 && n < len(lines) {
		lines = lines[len(lines)-n:]
	}
	return slices.Clone(lines), nil
}

func (f *fakeBackend) Follow(ctx context.Context, name string) (<-chan supervisor.LogLine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.lookup(name); err != nil {
		return nil, err
	}
	ch := make(chan supervisor.LogLine, 64) // appendLog never blocks; tests write a few lines
	f.subs[name] = append(f.subs[name], ch)
	context.AfterFunc(ctx, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.subs[name] = slices.DeleteFunc(f.subs[name], func(c chan supervisor.LogLine) bool { return c == ch })
		close(ch)
	})
	return ch, nil
}

// appendLog adds a line written by name's process, as the supervisor's
// output reader would.
func (f *fakeBackend) appendLog(name, text string) supervisor.LogLine {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := supervisor.LogLine{Time: time.Now().UTC(), Pid: f.svcs[name].Pid, Stream: "stdout", Line: text}
	f.logs[name] = append(f.logs[name], l)
	for _, ch := range f.subs[name] {
		ch <- l
	}
	return l
}

func (f *fakeBackend) Reload(context.Context) (supervisor.ReloadResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reloadErr != nil {
		return supervisor.ReloadResult{}, f.reloadErr
	}
	f.reloads++
	return f.reload, nil
}

// service returns a copy of name's state.
func (f *fakeBackend) service(name string) supervisor.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.svcs[name]
}
