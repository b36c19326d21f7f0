// SPDX-License-Identifier: Apache-2.0

//go:build linux

package peer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/udsvisor/udsvisor/bench/internal/proc"
	"github.com/udsvisor/udsvisor/bench/internal/report"
)

// base is what every driver shares: its directory, its services and its
// supervisor process.
type base struct {
	name     string
	env      *report.Env
	dir      string
	services []Service
	handoff  Handoff // how this peer's services get their sockets
	sleep    string  // the peer's own copy of /bin/sleep, for Holder
	execs    *execWatch
	child    *proc.Child
}

// prepared records services and starts counting the holder's
// executions, before anything runs.
func (b *base) prepared(services []Service, h Handoff) error {
	b.services, b.handoff = services, h
	if n := b.holders(); n == 0 || n < len(services) {
		return nil // see waitRunning
	}
	w, err := watchExecs(b.sleep)
	if err != nil {
		// Start-ups are then timed by walking /proc, which costs CPU.
		b.env.Logf("%s: %v; start-up found by polling /proc instead", b.name, err)
		return nil
	}
	b.execs = w
	return nil
}

func (b *base) Name() string { return b.name }
func (b *base) Dir() string  { return b.dir }

// spawn starts the supervisor with its log in the scratch directory and
// a minimal environment of its own.
func (b *base) spawn(argv ...string) error {
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
	p, err := Spawn(filepath.Join(b.dir, b.name+".log"), env, argv...)
	if err != nil {
		return fmt.Errorf("%s: %w", b.name, err)
	}
	b.child = p
	return nil
}

// Stop kills the tree and removes the directory.
func (b *base) Stop() error {
	var err error
	b.execs.close()
	if b.child != nil {
		err = b.child.Kill()
	}
	if rerr := os.RemoveAll(b.dir); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("stop %s: %w", b.name, err)
	}
	return nil
}

// waitRunning waits until the process tree holds, for every service
// with a program, a process with that program's comm, and every socket
// file exists; ready, when not nil, is one more condition. When every
// service is a Holder, the moment is when the last holder's execve was
// seen (see execWatch), and one walk of the tree then confirms it;
// otherwise (a few backends) the tree is walked every 10 ms, or less
// often for many services.
func (b *base) waitRunning(ctx context.Context, timeout time.Duration, ready func() bool) (time.Time, error) {
	want := map[string]int{}
	for _, s := range b.services {
		if c := s.comm(b.handoff); c != "" {
			want[c]++
		}
	}
	deadline := time.Now().Add(timeout)
	var at time.Time
	if holders := b.holders(); holders > 0 && holders == len(b.services) && b.execs != nil {
		t, err := b.execs.wait(ctx, holders, deadline, b.child.Exited)
		switch {
		case err == nil:
			at = t
		case !errors.Is(err, errOverflow): // on overflow, the walk decides
			return at, fmt.Errorf("%s: services not all running after %v: %w; log: %s", b.name, timeout, err, b.child.LogTail(600))
		}
	}
	b.execs.close()
	var got map[string]int
	for {
		if err := b.child.Exited(); err != nil {
			return at, err
		}
		got = map[string]int{}
		for _, p := range proc.Descendants(b.child.Pid(), func(p proc.Node) bool { return want[p.Comm] == 0 }) {
			got[p.Comm]++
		}
		if done(want, got) && socketsExist(b.services, b.handoff) && (ready == nil || ready()) {
			if at.IsZero() {
				at = time.Now()
			}
			return at, nil
		}
		if time.Now().After(deadline) {
			return at, fmt.Errorf("%s: services not all running after %v: want %v, found %v; log: %s", b.name, timeout, want, got, b.child.LogTail(600))
		}
		select {
		case <-ctx.Done():
			return at, ctx.Err()
		case <-time.After(10*time.Millisecond + time.Duration(len(b.services))*100*time.Microsecond):
		}
	}
}

// holders counts the Holder services.
func (b *base) holders() int {
	n := 0
	for _, s := range b.services {
		if s.kind == kindHolder && s.comm(b.handoff) == "sleep" {
			n++
		}
	}
	return n
}

func done(want, got map[string]int) bool {
	for c, n := range want {
		if got[c] < n {
			return false
		}
	}
	return true
}

func socketsExist(services []Service, h Handoff) bool {
	for _, s := range services {
		if s.Socket == "" || s.comm(h) == "" {
			continue
		}
		if _, err := os.Lstat(s.Socket); err != nil {
			return false
		}
	}
	return true
}

// helpers returns the root and its descendants whose comm is in names:
// a supervisor's per-service helpers.
func (b *base) helpers(names ...string) []int {
	if b.child == nil {
		return nil
	}
	is := map[string]bool{}
	for _, n := range names {
		is[n] = true
	}
	pids := []int{b.child.Pid()}
	for _, p := range proc.Descendants(b.child.Pid(), func(p proc.Node) bool { return is[p.Comm] }) {
		if is[p.Comm] {
			pids = append(pids, p.Pid)
		}
	}
	return pids
}
