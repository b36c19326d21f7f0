// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Package scale measures what each supervisor costs as the number of
// services grows: start-up, memory, the status command and idle CPU at
// each size, and the restart gap of one service.
//
// At each size every service is a peer.Holder, a child that only holds
// its socket, so that the supervisor is measured and not the child.
// Start-up runs from launching the supervisor to the last holder's
// execve (learnt from the kernel's process events, not by polling, which
// would compete with the supervisor for the CPU). Memory is the PSS of
// the supervisor side (the supervisor and its per-service helpers:
// runsv, s6-supervise, s6-fdholderd), at rest and again after the status
// calls; idle CPU is its utime+stime over a window in which every peer
// is up and nothing is asked of any. Last, udsvisor is upgraded in place
// a few times (ctl upgrade, the whole command), and every service
// process must be the same afterwards.
package scale

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/udsvisor/udsvisor/bench/internal/peer"
	"github.com/udsvisor/udsvisor/bench/internal/proc"
	"github.com/udsvisor/udsvisor/bench/internal/report"
)

// params are the loop lengths of one run.
type params struct {
	statusCalls int           // status commands per peer and size
	upgrades    int           // udsvisor's upgrades in place per size
	idleFor     time.Duration // the idle CPU window
	settle      time.Duration // quiet time after status calls
	// quiet is the time between the last start-up and the idle window:
	// longer than any supervisor's deferred start-up work (udsvisor
	// looks at each process's listeners again 5 s after it started), so
	// that the window sees only what an idle supervisor does. That work
	// is in the start-up CPU figure, which ends where the window begins
	// (for a peer started before others, it also holds its idle CPU
	// while they start).
	quiet      time.Duration
	gapSamples int
	gapPeriod  time.Duration // between two kill slots of one peer
	gapSettle  time.Duration // the least age of a process killed
	gapFor     time.Duration // the longest the restart gap runs
}

func paramsFor(env *report.Env) params {
	p := params{
		statusCalls: 10, upgrades: 5, idleFor: 30 * time.Second, settle: 2 * time.Second, quiet: 6 * time.Second,
		gapSamples: 30, gapPeriod: 1250 * time.Millisecond, gapSettle: 1100 * time.Millisecond, gapFor: 50 * time.Second,
	}
	if env.Quick {
		// quiet stays: shorter, the idle window would count start-up work.
		p.idleFor, p.settle, p.gapSamples, p.gapFor = 5*time.Second, time.Second, 5, 8*time.Second
	}
	return p
}

// Run measures the restart gap, then each size in env.Sizes in turn.
func Run(ctx context.Context, env *report.Env) ([]report.Figure, error) {
	dir := filepath.Join(env.Dir, "scale")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("scale: %w", err)
	}
	defer os.RemoveAll(dir)
	p := paramsFor(env)
	start := time.Now()

	gap, err := restartGaps(ctx, env, filepath.Join(dir, "gap"), p)
	figs := []report.Figure{gap}
	env.Logf("scale: restart gap took %v", time.Since(start).Round(time.Second))
	if err != nil {
		return figs, err
	}
	var rows [numMeasures][]report.Figure
	for _, n := range env.Sizes {
		t := time.Now()
		fs, err := atSize(ctx, env, filepath.Join(dir, fmt.Sprint(n)), n, p)
		for m, f := range fs {
			rows[m] = append(rows[m], f)
		}
		env.Logf("scale: %d services took %v", n, time.Since(t).Round(time.Second))
		if err != nil {
			return append(figs, flatten(rows)...), err
		}
	}
	env.Logf("scale: done in %v", time.Since(start).Round(time.Second))
	return append(figs, flatten(rows)...), nil
}

// The figures of one size, in the order of the table, where each
// measure's sizes follow one another.
const (
	mStartup = iota
	mStartCPU
	mPSSRest
	mPSSAfter
	mStatus
	mIdle
	mUpgrade
	numMeasures
)

func flatten(rows [numMeasures][]report.Figure) []report.Figure {
	var out []report.Figure
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

// running is one peer up at one size.
type running struct {
	name string
	sv   peer.Peer
}

// atSize starts n services under each peer in turn (the peers started
// earlier stay up, idle, so the idle window can watch all at once),
// then measures memory, idle CPU, status and memory again.
func atSize(ctx context.Context, env *report.Env, dir string, n int, p params) ([numMeasures]report.Figure, error) {
	big := n >= 1000
	var f [numMeasures]report.Figure
	f[mStartup] = figure(fmt.Sprintf("start-up, %d services: launch → all running", n), "ms", target(big, "< 1 s"))
	f[mStartCPU] = figure(fmt.Sprintf("CPU of the supervisor side, %d services, launch → %v after the last start-up", n, p.quiet), "ms", "")
	f[mPSSRest] = figure(fmt.Sprintf("PSS of the supervisor side, %d services, at rest", n), "MiB", target(big, "≤ 20 MiB"))
	f[mPSSAfter] = figure(fmt.Sprintf("PSS, %d services, after %d status calls", n, p.statusCalls), "MiB", "no growth")
	if big {
		f[mPSSAfter].Target = "≤ 20 MiB, no growth"
	}
	f[mStatus] = figure(fmt.Sprintf("status of %d services, whole command", n), "ms", target(big, "≤ 5 ms"))
	f[mIdle] = figure(fmt.Sprintf("idle CPU, %d services, %v", n, p.idleFor), "ms", "0")
	f[mUpgrade] = figure(fmt.Sprintf("upgrade in place, %d services, whole command", n), "ms", "same processes")

	var up []running
	defer func() {
		for _, r := range up {
			if err := r.sv.Stop(); err != nil {
				env.Logf("scale: %v", err)
			}
		}
	}()
	for _, name := range env.Peers {
		sv, startup, err := startUp(ctx, env, filepath.Join(dir, name), name, n)
		if sv != nil {
			up = append(up, running{name, sv})
		}
		if ctx.Err() != nil {
			return f, ctx.Err()
		}
		if err != nil {
			env.Logf("scale: %d services under %s: %v", n, name, err)
			f[mStartup].Results[name] = report.Result{Note: "error"}
			if sv != nil {
				_ = sv.Stop()
				up = up[:len(up)-1]
			}
			continue
		}
		env.Logf("scale: %d services under %s: up in %v", n, name, startup.Round(time.Millisecond))
		f[mStartup].Results[name] = result(ms(startup))
	}
	if err := sleep(ctx, p.quiet); err != nil {
		return f, err
	}
	// Idle: every peer up at once and nothing asked of any. The CPU
	// used so far is each one's start-up.
	before := make([]proc.CPU, len(up))
	for i, r := range up {
		before[i] = proc.CPUOf(r.sv.Pids())
		f[mStartCPU].Results[r.name] = result(ms(before[i].Self))
	}
	if err := sleep(ctx, p.idleFor); err != nil {
		return f, err
	}
	for i, r := range up {
		after := proc.CPUOf(r.sv.Pids())
		f[mIdle].Results[r.name] = result(ms(after.Self - before[i].Self))
	}
	for _, r := range up {
		f[mPSSRest].Results[r.name] = pss(env, r)
	}

	for _, r := range up {
		samples, err := statusCalls(ctx, r.sv, p.statusCalls)
		if ctx.Err() != nil {
			return f, ctx.Err()
		}
		if err != nil {
			env.Logf("scale: status of %d services under %s: %v", n, r.name, err)
			f[mStatus].Results[r.name] = report.Result{Note: "error"}
			continue
		}
		f[mStatus].Results[r.name] = report.Result{Samples: samples}
	}
	if err := sleep(ctx, p.settle); err != nil {
		return f, err
	}
	for _, r := range up {
		f[mPSSAfter].Results[r.name] = pss(env, r)
	}
	for _, r := range up {
		f[mUpgrade].Results[r.name] = upgrades(ctx, env, r, p.upgrades)
	}
	return f, nil
}

// upgrader is a peer that can replace its own binary in place.
type upgrader interface{ Upgrade(context.Context) error }

// upgrades times the peer's upgrades in place and checks that the
// processes below it stayed the same; "-" for a peer without one.
func upgrades(ctx context.Context, env *report.Env, r running, times int) report.Result {
	u, ok := r.sv.(upgrader)
	if !ok {
		return report.Result{Note: "-"}
	}
	tree := func() string { return fmt.Sprint(proc.Descendants(r.sv.Pids()[0], nil)) }
	before := tree()
	var samples []float64
	for range times {
		t := time.Now()
		if err := u.Upgrade(ctx); err != nil {
			env.Logf("scale: upgrade under %s: %v", r.name, err)
			return report.Result{Note: "error"}
		}
		samples = append(samples, ms(time.Since(t)))
	}
	if tree() != before {
		env.Logf("scale: the processes under %s changed across its upgrades", r.name)
		return report.Result{Samples: samples, Note: "processes changed"}
	}
	return report.Result{Samples: samples}
}

// startUp prepares n holders under the peer, then times launch → every
// holder running with its socket bound.
func startUp(ctx context.Context, env *report.Env, dir, name string, n int) (peer.Peer, time.Duration, error) {
	sv, err := peer.New(name, env, dir, peer.Options{})
	if err != nil {
		return nil, 0, err
	}
	services := make([]peer.Service, n)
	for i := range services {
		s := fmt.Sprintf("s%04d", i)
		services[i] = peer.Holder(s, filepath.Join(dir, "sock", s+".sock"), env.Backend)
	}
	if err := sv.Prepare(services); err != nil {
		return sv, 0, err
	}
	t0 := time.Now()
	if err := sv.Launch(ctx); err != nil {
		return sv, 0, err
	}
	at, err := sv.WaitRunning(ctx, 30*time.Second+time.Duration(n)*60*time.Millisecond)
	return sv, at.Sub(t0), err
}

// statusCalls times the peer's status command calls times.
func statusCalls(ctx context.Context, sv peer.Peer, calls int) ([]float64, error) {
	var samples []float64
	for range calls {
		t := time.Now()
		if err := sv.Status(ctx); err != nil {
			return samples, err
		}
		samples = append(samples, ms(time.Since(t)))
	}
	return samples, nil
}

func pss(env *report.Env, r running) report.Result {
	b, err := proc.PSS(r.sv.Pids())
	if err != nil {
		env.Logf("scale: PSS under %s: %v", r.name, err)
		return report.Result{Note: "error"}
	}
	return result(float64(b) / (1 << 20))
}

func figure(name, unit, target string) report.Figure {
	return report.Figure{Name: name, Unit: unit, Target: target, Results: map[string]report.Result{}}
}

func target(applies bool, t string) string {
	if applies {
		return t
	}
	return ""
}

func result(v float64) report.Result { return report.Result{Samples: []float64{v}} }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
