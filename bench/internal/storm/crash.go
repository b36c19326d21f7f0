// SPDX-License-Identifier: Apache-2.0

//go:build linux

package storm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/udsvisor/udsvisor/bench/internal/peer"
	"github.com/udsvisor/udsvisor/bench/internal/proc"
	"github.com/udsvisor/udsvisor/bench/internal/report"
)

// crashLoop is one peer running a service that exits 1 at once.
type crashLoop struct {
	name  string
	sv    peer.Peer
	count string // one byte per spawn
	err   error  // the start failed
}

// crashLoops are every peer's crash loop, started together and read
// together when their time is up, whatever the benchmark does then.
type crashLoops struct {
	env   *report.Env
	loops []*crashLoop
	quit  chan struct{} // closed by stop
	done  chan struct{} // closed once figs and err are set
	figs  []report.Figure
	err   error
	once  sync.Once
}

// crashScript is the crashing command. A process that exits at once
// leaves nothing behind to count, so it first appends a byte to a file:
// the file's size is the number of spawns, the same way for every peer.
// The shell's start is the whole cost of the command.
const crashScript = "#!/bin/sh\necho >> %s\nexit 1\n"

// startCrashLoops starts the crash loop under every peer found, and
// reads their figures after d.
func startCrashLoops(ctx context.Context, env *report.Env, dir string, d time.Duration) *crashLoops {
	c := &crashLoops{env: env, quit: make(chan struct{}), done: make(chan struct{})}
	until := time.Now().Add(d)
	for _, name := range env.Peers {
		l := &crashLoop{name: name}
		c.loops = append(c.loops, l)
		l.sv, l.err = peer.New(name, env, filepath.Join(dir, name), peer.Options{})
		if l.err == nil {
			l.err = l.launch(ctx)
		}
		if l.err != nil {
			env.Logf("storm: crash loop under %s: %v", name, l.err)
		}
	}
	go func() {
		defer close(c.done)
		select {
		case <-ctx.Done():
			c.err = ctx.Err()
		case <-c.quit:
			c.err = errors.New("crash loop: stopped early")
		case <-time.After(time.Until(until)):
			c.figs, c.err = c.read(ctx, d)
		}
		c.stopPeers()
	}()
	return c
}

func (l *crashLoop) launch(ctx context.Context) error {
	l.count = filepath.Join(l.sv.Dir(), "spawns")
	if err := os.WriteFile(l.count, nil, 0o644); err != nil {
		return err
	}
	u, err := user.Lookup(peer.User)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(l.count, uid, gid); err != nil {
		return err
	}
	script := filepath.Join(l.sv.Dir(), "crash.sh")
	if err := os.WriteFile(script, fmt.Appendf(nil, crashScript, l.count), 0o755); err != nil {
		return err
	}
	if err := l.sv.Prepare([]peer.Service{peer.Command("crash", script)}); err != nil {
		return err
	}
	return l.sv.Launch(ctx)
}

// stop ends the crash loops, read or not; safe more than once.
func (c *crashLoops) stop() {
	c.once.Do(func() { close(c.quit) })
	<-c.done
}

func (c *crashLoops) stopPeers() {
	for _, l := range c.loops {
		if l.sv != nil {
			if err := l.sv.Stop(); err != nil {
				c.env.Logf("storm: crash loop: %v", err)
			}
		}
	}
}

// finish waits for the figures.
func (c *crashLoops) finish(ctx context.Context) ([]report.Figure, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return c.figs, c.err
	}
}

// read takes every peer's figures after d of crash loop.
func (c *crashLoops) read(ctx context.Context, d time.Duration) ([]report.Figure, error) {
	secs := fmt.Sprintf("%.0f s", d.Seconds())
	spawns := report.Figure{Name: "crash loop (exits 1 at once), " + secs + ": spawns", Results: map[string]report.Result{}}
	cpu := report.Figure{Name: "crash loop: CPU of the supervisor side", Unit: "ms", Results: map[string]report.Result{}}
	all := report.Figure{Name: "crash loop: CPU with the spawned processes", Unit: "ms", Results: map[string]report.Result{}}
	state := report.Figure{Name: "crash loop: final state", Target: "backs off, ends failed", Results: map[string]report.Result{}}
	for _, l := range c.loops {
		if l.err != nil {
			spawns.Results[l.name] = report.Result{Note: "error"}
			continue
		}
		st, err := l.sv.State(ctx, "crash")
		if err != nil {
			c.env.Logf("storm: crash loop under %s: %v", l.name, err)
			st = "?"
		}
		fi, err := os.Stat(l.count)
		if err != nil {
			return nil, fmt.Errorf("crash loop under %s: %w", l.name, err)
		}
		// The whole life of the supervisor side: its start and the loop.
		t := proc.CPUOf(l.sv.Pids())
		spawns.Results[l.name] = report.Result{Samples: []float64{float64(fi.Size())}}
		cpu.Results[l.name] = report.Result{Samples: []float64{ms(t.Self)}}
		all.Results[l.name] = report.Result{Samples: []float64{ms(t.Self + t.Children)}}
		state.Results[l.name] = report.Result{Note: st}
		c.env.Logf("storm: crash loop under %s: %d spawns, CPU %v (%v with children), state %q", l.name, fi.Size(), t.Self, t.Self+t.Children, st)
	}
	return []report.Figure{spawns, cpu, all, state}, nil
}
