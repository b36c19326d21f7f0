// SPDX-License-Identifier: Apache-2.0

//go:build linux

package testutil

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// upTimeout bounds every wait on a `udsvisor up`: generous, because CI
// machines are noisy and a wait that is met returns at once.
const upTimeout = 30 * time.Second

// UpOptions are the rarer ways to start `udsvisor up`; the zero value
// runs the binary itself with the test's environment.
type UpOptions struct {
	// Wrap is the argv of a program that runs udsvisor, such as
	// prlimit --nofile=64:64 or unshare -fp; it must pass on stderr.
	Wrap []string
	// Args follow `up -c CFG`, e.g. -log-level warn.
	Args []string
	// Env is added to the test's environment.
	Env []string
	// ExtraFiles are inherited as fds 3 and up.
	ExtraFiles []*os.File
	// JournalStream sets JOURNAL_STREAM to udsvisor's stderr, as systemd
	// does for a service whose stderr is the journal.
	JournalStream bool
	// Notify sets NOTIFY_SOCKET to a socket of the helper's, for
	// WaitReady: the one start-up event that does not depend on what
	// udsvisor logs.
	Notify bool
	// DiscardLog sends stderr to /dev/null unread, for a test whose
	// services flood udsvisor's log: gigabytes the test must not keep,
	// whose reading would take the CPU it measures. WaitUp, WaitLog and
	// the waits built on it then fail.
	DiscardLog bool
}

// Up is a running `udsvisor up` whose log a test can wait on: each line
// on its stderr wakes the waiters as it arrives.
type Up struct {
	cmd    *exec.Cmd
	done   chan error // buffered 1: Wait's result, put back by whoever takes it
	notify *net.UnixConn

	mu      sync.Mutex
	entries []Entry       // every line so far
	ended   bool          // stderr reached EOF (or is not read)
	changed chan struct{} // closed and replaced when entries or ended change
	drained chan struct{} // closed at EOF on stderr
}

// StartUp runs `bin up -c cfg` (bin is the binary that TestMain built)
// and stops it after the test: SIGTERM, so that its services and sockets
// go too, then SIGKILL if it has not exited within 30 s. When the test
// failed, its log is printed.
func StartUp(t testing.TB, bin, cfg string, opt UpOptions) *Up {
	t.Helper()
	argv := append(append(append([]string{}, opt.Wrap...), bin, "up", "-c", cfg), opt.Args...)
	p := &Up{
		cmd:     exec.Command(argv[0], argv[1:]...),
		done:    make(chan error, 1),
		changed: make(chan struct{}),
		drained: make(chan struct{}),
	}
	p.cmd.ExtraFiles = opt.ExtraFiles
	p.cmd.Env = append(os.Environ(), opt.Env...)
	var r, w *os.File
	if opt.DiscardLog {
		p.ended = true
		close(p.drained)
	} else {
		var err error
		if r, w, err = os.Pipe(); err != nil {
			t.Fatal(err)
		}
		// A file, not an io.Writer, so that exec copies nothing and Wait
		// does not wait for the pipe: the reader below owns it.
		p.cmd.Stderr = w
		if opt.JournalStream {
			var st unix.Stat_t
			if err := unix.Fstat(int(w.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			p.cmd.Env = append(p.cmd.Env, fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino))
		}
	}
	if opt.Notify {
		path := filepath.Join(t.TempDir(), "notify.sock")
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		p.notify = c
		p.cmd.Env = append(p.cmd.Env, "NOTIFY_SOCKET="+path)
	}
	err := p.cmd.Start()
	if w != nil {
		w.Close() // udsvisor has its copy; EOF comes when it exits
	}
	if err != nil {
		if r != nil {
			r.Close()
		}
		t.Fatal(err)
	}
	if r != nil {
		go p.read(r)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(unix.SIGTERM)
		select {
		case err := <-p.done:
			p.done <- err
		case <-time.After(upTimeout):
			t.Errorf("udsvisor up did not stop within %v of SIGTERM", upTimeout)
			p.cmd.Process.Kill()
		}
		p.drain()
		if p.notify != nil {
			p.notify.Close()
		}
		if t.Failed() && !opt.DiscardLog {
			log := p.Log()
			const limit = 256 << 10
			if len(log) > limit {
				log = "[...]" + log[len(log)-limit:]
			}
			t.Logf("udsvisor up log:\n%s", log)
		}
	})
	return p
}

// read parses stderr line by line as it arrives and wakes the waiters.
// bufio.Reader rather than Scanner: a child's line is logged up to
// 16 KiB, escaped.
func (p *Up) read(r *os.File) {
	defer r.Close()
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			p.mu.Lock()
			p.entries = append(p.entries, parseEntry(strings.TrimSuffix(line, "\n")))
			p.wake()
			p.mu.Unlock()
		}
		if err != nil {
			p.mu.Lock()
			p.ended = true
			p.wake()
			p.mu.Unlock()
			close(p.drained)
			return
		}
	}
}

// wake tells every waiter that something changed; p.mu is held.
func (p *Up) wake() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// drain waits for the rest of the log once the process has exited. Only
// a process that inherited udsvisor's stderr could hold it open longer;
// the bound keeps such a bug from hanging the test.
func (p *Up) drain() {
	select {
	case <-p.drained:
	case <-time.After(upTimeout):
	}
}

// Pid is the pid of the process started: udsvisor, or the wrapper.
func (p *Up) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process started.
func (p *Up) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL to the process started.
func (p *Up) Kill() error { return p.cmd.Process.Kill() }

// Stop sends SIGTERM and returns the exit error, once the whole log has
// been read.
func (p *Up) Stop(t testing.TB) error {
	t.Helper()
	// Exited already: its status is what the caller wants.
	if err := p.Signal(unix.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	return p.Wait(t)
}

// Wait waits up to 30 s for the process to exit by itself and returns
// its exit error, once the whole log has been read.
func (p *Up) Wait(t testing.TB) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		p.drain()
		return err
	case <-time.After(upTimeout):
		t.Fatalf("udsvisor did not exit within %v", upTimeout)
		return nil
	}
}

// Log is everything udsvisor has written to stderr so far.
func (p *Up) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, e := range p.entries {
		b.WriteString(e.Line)
		b.WriteByte('\n')
	}
	return b.String()
}

// WaitLog returns the first line of the log, from its beginning, that
// match accepts, waiting up to 30 s for it; what is logged before the
// wait counts too, so a test cannot miss an event by asking late. It
// fails the test if udsvisor's log ends first.
func (p *Up) WaitLog(t testing.TB, what string, match func(Entry) bool) Entry {
	t.Helper()
	timeout := time.NewTimer(upTimeout)
	defer timeout.Stop()
	seen := 0
	for {
		p.mu.Lock()
		for ; seen < len(p.entries); seen++ {
			if e := p.entries[seen]; match(e) {
				p.mu.Unlock()
				return e
			}
		}
		ended, changed := p.ended, p.changed
		p.mu.Unlock()
		if ended {
			t.Fatalf("udsvisor's log ended (or is discarded) without %s", what)
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("no %s in udsvisor's log within %v", what, upTimeout)
		}
	}
}

// WaitUp waits for "udsvisor is up": every service's first start has
// been answered, so its status has a pid (or the start's error), and the
// signal handlers are in place.
func (p *Up) WaitUp(t testing.TB) {
	t.Helper()
	p.WaitLog(t, `"udsvisor is up"`, func(e Entry) bool { return e.Msg == "udsvisor is up" })
}

// WaitState returns the first "state" event of service into state.
// udsvisor logs a transition once it has published the new status.
func (p *Up) WaitState(t testing.TB, service, state string) Entry {
	t.Helper()
	return p.WaitLog(t, fmt.Sprintf("state %s of %s", state, service), func(e Entry) bool {
		return e.Msg == "state" && e.Str("service") == service && e.Str("to") == state
	})
}

// WaitSpawned returns the first line in which udsvisor reports that a
// process of service runs its command; Int("pid") is its pid.
func (p *Up) WaitSpawned(t testing.TB, service string) Entry {
	t.Helper()
	return p.WaitLog(t, "a process of "+service, func(e Entry) bool {
		return e.Msg == "spawned" && e.Str("service") == service
	})
}

// WaitExit returns the line in which udsvisor reports that it reaped
// pid, the process of service: by then the kernel has reparented pid's
// children, and a restart, if any, is under way.
func (p *Up) WaitExit(t testing.TB, service string, pid int) Entry {
	t.Helper()
	return p.WaitLog(t, fmt.Sprintf("exit of %s pid %d", service, pid), func(e Entry) bool {
		return e.Str("service") == service && e.Int("pid") == pid &&
			(e.Msg == "stopped" || strings.HasPrefix(e.Msg, "process ended"))
	})
}

// WaitReady waits for READY=1 on the socket in NOTIFY_SOCKET, which
// udsvisor sends right after "udsvisor is up" whatever its log level.
// The start must have had UpOptions.Notify.
func (p *Up) WaitReady(t testing.TB) {
	t.Helper()
	if p.notify == nil {
		t.Fatal("WaitReady without UpOptions.Notify")
	}
	p.notify.SetReadDeadline(time.Now().Add(upTimeout))
	buf := make([]byte, 4096)
	for {
		n, err := p.notify.Read(buf)
		if err != nil {
			t.Fatalf("no READY=1 from udsvisor: %v", err)
		}
		for _, l := range strings.Split(string(buf[:n]), "\n") {
			if l == "READY=1" {
				return
			}
		}
	}
}

// WaitGone waits up to 30 s for pid to exit, woken by its pidfd (the
// kernel signals it for any process, child or not). A zombie counts as
// gone: who reaps it is its parent's business.
func WaitGone(t testing.TB, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return
	}
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(upTimeout)
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, max(0, int(time.Until(deadline).Milliseconds())))
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			t.Fatalf("poll pidfd of %d: %v", pid, err)
		case n == 0:
			t.Fatalf("pid %d still runs after %v", pid, upTimeout)
		}
		return
	}
}
