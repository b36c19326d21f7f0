// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import "sync"

// broadcast wakes everyone waiting for the next change at once: wait
// returns a channel that the next notify closes. Services notify it each
// time they publish a new state, so that a waiter looks again only when
// there is something new to see.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{} // nil while nobody waits
}

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}
