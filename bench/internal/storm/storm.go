// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Package storm measures how each supervisor's services fare when their
// processes die: the kill storm (a backend SIGKILLed every 300 ms under
// open-loop load through nginx), the crash loop (a command that exits 1
// at once) and the poison request (a request that kills the process
// serving it, once a second, among normal load).
package storm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/bench/internal/peer"
	"github.com/udsvisor/udsvisor/bench/internal/report"
)

// params are the loop lengths of one run.
type params struct {
	stormRate   int           // kill storm requests per second
	stormFor    time.Duration // kill storm length
	killEvery   time.Duration
	timeout     time.Duration // client time-out of every request
	crashFor    time.Duration
	poisonRate  int
	poisonFor   time.Duration
	poisonEvery time.Duration
}

func paramsFor(env *report.Env) params {
	p := params{
		stormRate: 400, stormFor: 10 * time.Second, killEvery: 300 * time.Millisecond,
		timeout:  3 * time.Second,
		crashFor: 60 * time.Second,
		// Half the storm's rate: enough to see what a poisoned process
		// costs its neighbours, and the run stays short.
		poisonRate: 200, poisonFor: 10 * time.Second, poisonEvery: time.Second,
	}
	if env.Quick {
		p.stormFor, p.crashFor, p.poisonFor = 2*time.Second, 10*time.Second, 2*time.Second
	}
	return p
}

// Run measures the storm figures for udsvisor and every peer found. The
// crash loops of all peers run at once, each in its own tree, in the
// background of the kill storms and poison runs: they spawn a few
// processes a second at most, which disturbs neither. The kill storms
// and poison runs go one after the other, each alone with its nginx.
func Run(ctx context.Context, env *report.Env) ([]report.Figure, error) {
	dir := filepath.Join(env.Dir, "storm")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("storm: %w", err)
	}
	defer os.RemoveAll(dir)
	p := paramsFor(env)

	start := time.Now()
	crashes := startCrashLoops(ctx, env, filepath.Join(dir, "crash"), p.crashFor)
	defer crashes.stop()

	figs, err := killStorms(ctx, env, dir, p)
	env.Logf("storm: kill storms took %v", time.Since(start).Round(time.Second))
	if err != nil {
		return figs, err
	}
	t := time.Now()
	pf, err := poisonRuns(ctx, env, dir, p)
	figs = append(figs, pf...)
	env.Logf("storm: poison runs took %v", time.Since(t).Round(time.Second))
	if err != nil {
		return figs, err
	}
	cf, err := crashes.finish(ctx)
	figs = append(figs, cf...)
	env.Logf("storm: done in %v", time.Since(start).Round(time.Second))
	return figs, err
}

// stormCase is one row group of the kill storm.
type stormCase struct {
	title     string // the figures' names start with it
	peer      string
	opt       peer.Options
	generated bool // nginx runs the config `udsvisor proxy nginx` prints
	target    bool // udsvisor's targets apply
}

// killStorms runs the kill storm under udsvisor's three configs, then
// under each peer's own default, one at a time. A run that fails is an
// "error" in its cell and a line in the log; the others still run.
func killStorms(ctx context.Context, env *report.Env, dir string, p params) ([]report.Figure, error) {
	cases := []stormCase{
		{title: "kill storm, default config", peer: report.Udsvisor, target: true},
		{title: "kill storm, `udsvisor proxy nginx` config", peer: report.Udsvisor, opt: peer.Options{Proxy: true}, generated: true, target: true},
		{title: "kill storm, app binds its own socket (-bind)", peer: report.Udsvisor, opt: peer.Options{SelfBind: true}},
	}
	for _, name := range env.Peers {
		if name != report.Udsvisor {
			cases = append(cases, stormCase{title: cases[0].title, peer: name})
		}
	}
	n := int(float64(p.stormRate) * p.stormFor.Seconds())
	holder := report.Figure{Name: "kill storm: socket held by", Results: map[string]report.Result{}}
	for _, name := range env.Peers {
		holder.Results[name] = report.Result{Note: peer.SocketHolder(name, peer.Options{})}
	}
	figs := []report.Figure{holder}
	byTitle := map[string]int{} // first figure of each title
	for i, c := range cases {
		if _, ok := byTitle[c.title]; !ok {
			byTitle[c.title] = len(figs)
			failed := report.Figure{Name: fmt.Sprintf("%s: failed of %d", c.title, n), Results: map[string]report.Result{}}
			p99 := report.Figure{Name: c.title + ": p99 latency", Unit: "ms", Results: map[string]report.Result{}}
			kills := report.Figure{Name: c.title + ": kills done", Results: map[string]report.Result{}}
			if c.target {
				failed.Target, p99.Target = "≤ 0.1 per kill", "≤ 50 ms"
				if c.generated {
					failed.Target = "0"
				}
			}
			figs = append(figs, failed, p99, kills)
		}
		f := byTitle[c.title]
		env.Logf("storm: %s, %s", c.title, c.peer)
		r, err := killStorm(ctx, env, filepath.Join(dir, fmt.Sprintf("kill%d-%s", i, c.peer)), c, p)
		if ctx.Err() != nil {
			return figs, ctx.Err()
		}
		if err != nil {
			env.Logf("storm: %s, %s: %v", c.title, c.peer, err)
			figs[f].Results[c.peer] = report.Result{Note: "error"}
			continue
		}
		env.Logf("storm: %s, %s: %d of %d failed (%s), p99 %v, %d kills; nginx upstream errors: %s",
			c.title, c.peer, r.Failed, r.Total, r.Failures(), r.P99, r.kills, r.upstream)
		note := ""
		if r.Failed > 0 {
			note = "(" + r.Failures() + ")"
		}
		figs[f].Results[c.peer] = report.Result{Samples: []float64{float64(r.Failed)}, Note: note}
		figs[f+1].Results[c.peer] = report.Result{Samples: []float64{ms(r.P99)}}
		figs[f+2].Results[c.peer] = report.Result{Samples: []float64{float64(r.kills)}, Note: r.end}
	}
	return figs, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// stormResult is one kill storm run.
type stormResult struct {
	Summary
	kills    int
	upstream string // nginx's upstream errors by cause
	end      string // "(ends STATE)" when the service ends not running
}

// killStorm runs one backend under c.peer behind nginx, and the load
// while a killer SIGKILLs the backend's current process every
// p.killEvery.
func killStorm(ctx context.Context, env *report.Env, dir string, c stormCase, p params) (stormResult, error) {
	var r stormResult
	sv, ng, err := backendBehindNginx(ctx, env, dir, c.peer, c.opt, c.generated)
	defer stopAll(env, sv, ng)
	if err != nil {
		return r, err
	}
	until := time.Now().Add(p.stormFor)
	kills := make(chan int, 1)
	go func() { kills <- killer(ctx, sv, "backend", p.killEvery, until) }()
	samples := Load{URL: "http://" + ng.addr + "/", Rate: p.stormRate, Duration: p.stormFor, Timeout: p.timeout}.Run(ctx)
	r.Summary, r.kills, r.upstream = Summarize(samples), <-kills, ng.upstreamErrors()
	r.end = endState(ctx, sv)
	return r, nil
}

// endState notes the backend's state when the supervisor gave up on
// it (supervisord's FATAL), "" while it runs or restarts.
func endState(ctx context.Context, sv peer.Peer) string {
	st, err := sv.State(ctx, "backend")
	switch {
	case err != nil:
		return ""
	case st == "FATAL" || st == "failed":
		return "(ends " + st + ")"
	}
	return ""
}

// backendBehindNginx starts one backend service, "backend", under
// peerName and an nginx in front of it, and waits until a request
// through nginx is answered. The caller stops both, even on error.
func backendBehindNginx(ctx context.Context, env *report.Env, dir, peerName string, opt peer.Options, generated bool) (peer.Peer, *nginx, error) {
	sv, err := peer.New(peerName, env, dir, opt)
	if err != nil {
		return nil, nil, err
	}
	sock := filepath.Join(dir, "sock", "backend.sock")
	if err := sv.Prepare([]peer.Service{peer.Backend("backend", env.Backend, sock)}); err != nil {
		return sv, nil, err
	}
	if err := sv.Launch(ctx); err != nil {
		return sv, nil, err
	}
	if _, err := sv.WaitRunning(ctx, 30*time.Second); err != nil {
		return sv, nil, err
	}
	ng, err := newNginx(filepath.Join(dir, "nginx"))
	if err != nil {
		return sv, nil, err
	}
	body := ng.directServer(sock)
	if generated {
		if body, err = generatedConfig(ctx, env, sv, ng); err != nil {
			return sv, nil, err
		}
	}
	if err := ng.start(body); err != nil {
		return sv, ng, err
	}
	return sv, ng, ng.waitOK(ctx, 20*time.Second)
}

// generatedConfig writes what `udsvisor proxy nginx` prints for the
// service's config and returns the include of it.
func generatedConfig(ctx context.Context, env *report.Env, sv peer.Peer, ng *nginx) (string, error) {
	u, ok := sv.(*peer.Udsvisor)
	if !ok {
		return "", errors.New("a generated nginx config needs udsvisor")
	}
	out, err := peer.Output(ctx, env.Udsvisor, "proxy", "nginx", "-c", u.ConfigPath(), "--listen", ng.addr, "--proxy-user", "root")
	if err != nil {
		return "", fmt.Errorf("udsvisor proxy nginx: %w", err)
	}
	path := filepath.Join(ng.dir, "udsvisor.conf")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return "", fmt.Errorf("udsvisor proxy nginx: %w", err)
	}
	return "    include " + path + ";\n", nil
}

// stopAll stops nginx and the peer, logging what fails: a run's figures
// stand even if its clean-up did not.
func stopAll(env *report.Env, sv peer.Peer, ng *nginx) {
	if ng != nil {
		if err := ng.stop(); err != nil {
			env.Logf("storm: stopping nginx: %v", err)
		}
	}
	if sv != nil {
		if err := sv.Stop(); err != nil {
			env.Logf("storm: %v", err)
		}
	}
}

// killer SIGKILLs the service's current process every `every` until
// `until`, and returns how many processes it killed. A tick that finds
// no process, or the one it killed last (the restart is not there yet),
// kills nothing.
func killer(ctx context.Context, sv peer.Peer, service string, every time.Duration, until time.Time) int {
	kills, last := 0, 0
	ticks(ctx, every, until, func() {
		qctx, cancel := context.WithTimeout(ctx, every)
		pid, err := sv.MainPid(qctx, service)
		cancel()
		if err != nil || pid == 0 || pid == last {
			return
		}
		if unix.Kill(pid, unix.SIGKILL) == nil {
			kills, last = kills+1, pid
		}
	})
	return kills
}

// ticks calls f every `every` until `until`, or until ctx ends.
func ticks(ctx context.Context, every time.Duration, until time.Time, f func()) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if now.After(until) {
				return
			}
			f()
		}
	}
}
