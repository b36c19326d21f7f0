// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import "sync"

// inbox collects the events of a service from everything that runs beside
// its goroutine: the reaper, launches, notify readers, watches and
// timers. post never blocks, whatever the service goroutine is doing, so
// that no sender (the reaper least of all, which posts under its lock)
// waits for a service; ready has room for one value, which means "look".
type inbox struct {
	mu     sync.Mutex
	events []any
	ready  chan struct{}
}

func newInbox() *inbox { return &inbox{ready: make(chan struct{}, 1)} }

func (b *inbox) post(ev any) {
	b.mu.Lock()
	b.events = append(b.events, ev)
	b.mu.Unlock()
	select {
	case b.ready <- struct{}{}:
	default: // a look is already pending
	}
}

// take returns the events posted so far, oldest first.
func (b *inbox) take() []any {
	b.mu.Lock()
	defer b.mu.Unlock()
	evs := b.events
	b.events = nil
	return evs
}
