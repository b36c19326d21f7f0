// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"errors"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// acceptWatch tells when a starting process has taken a connection from
// one of its listening sockets, the sign that it serves: a crash after
// that is not a failed start, however young the process was.
//
// udsvisor never accepts on its copies of the listeners, so a socket
// whose accept queue held connections and then held none was drained by
// the service. The kernel has an event for "a connection is waiting"
// (the listener is readable) but none for "the queue became empty", so
// the watch waits for the first in the netpoller, at no cost while
// nobody connects, and only then polls for the second, briefly.
//
// The watch begins before the process is launched. Connections that
// queued while no process ran (after a crash, during a restart) are seen
// waiting, so the first accepts of the next process are always seen. A
// connection that arrives later and is accepted before the watch sees it
// waiting goes unnoticed; the process then counts as started once it has
// lived min_uptime, as it would without the watch.
type acceptWatch struct {
	ep   *polledEpoll  // over the listeners
	quit chan struct{} // closed by stop
	once sync.Once
}

// Bounds of the polling that waits for a non-empty queue to drain: it
// starts fine, since a live process drains its queue in microseconds,
// and backs off for one that accepts slowly.
const (
	drainPollFirst = time.Millisecond
	drainPollMax   = 20 * time.Millisecond
)

// watchAccept starts watching the listeners until a connection is taken
// (then it calls taken, once, from its own goroutine), maxWait passes or
// stop is called. It returns nil when there is nothing to watch or the
// epoll instance cannot be made (the process then counts as started by
// min_uptime alone).
func watchAccept(listeners []*os.File, maxWait time.Duration, taken func()) *acceptWatch {
	if len(listeners) == 0 {
		return nil
	}
	// Level-triggered: a listener stays ready while its queue holds a
	// connection.
	ep, err := watchEpoll("accept-watch", listeners, unix.EPOLLIN)
	if err != nil {
		return nil
	}
	fds := make([]unix.PollFd, len(listeners))
	for i, l := range listeners {
		fds[i] = unix.PollFd{Fd: int32(l.Fd()), Events: unix.POLLIN}
	}
	w := &acceptWatch{ep: ep, quit: make(chan struct{})}
	deadline := time.Now().Add(maxWait)
	go w.run(taken, fds, deadline)
	return w
}

// stop ends the watch; it may be called any number of times, also after
// taken was called.
func (w *acceptWatch) stop() {
	if w == nil {
		return
	}
	w.once.Do(func() {
		close(w.quit)
		w.ep.Close() // wakes a goroutine parked in the poller
	})
}

func (w *acceptWatch) run(taken func(), fds []unix.PollFd, deadline time.Time) {
	defer w.stop()
	first, ok := w.waitPending(deadline)
	if !ok {
		return
	}
	// A connection is waiting on listener first: poll until a queue
	// that held one is empty. Later arrivals may keep it busy;
	// min_uptime then decides.
	pending := make([]bool, len(fds))
	pending[first] = true
	interval := drainPollFirst
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if _, err := unix.Poll(fds, 0); err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		for i := range fds {
			ready := fds[i].Revents&unix.POLLIN != 0
			if pending[i] && !ready {
				taken()
				return
			}
			pending[i] = pending[i] || ready
		}
		wait := min(interval, time.Until(deadline))
		if wait <= 0 {
			return
		}
		timer.Reset(wait)
		select {
		case <-w.quit:
			return
		case <-timer.C:
		}
		interval = min(2*interval, drainPollMax)
	}
}

// waitPending parks until one of the listeners has a connection waiting
// and returns its index. It reports false at the deadline or when the
// watch is stopped.
func (w *acceptWatch) waitPending(deadline time.Time) (int, bool) {
	if err := w.ep.setDeadline(deadline); err != nil {
		return 0, false
	}
	var events [1]unix.EpollEvent
	n, err := w.ep.wait(events[:])
	return int(events[0].Fd), err == nil && n > 0
}
