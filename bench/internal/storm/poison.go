// SPDX-License-Identifier: Apache-2.0

//go:build linux

package storm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"time"

	"github.com/udsvisor/udsvisor/bench/internal/peer"
	"github.com/udsvisor/udsvisor/bench/internal/report"
	"github.com/udsvisor/udsvisor/bench/internal/unixhttp"
)

// poisonRuns runs, under udsvisor's default config and each peer in
// turn, the backend under normal load through nginx while GET /poison,
// which makes the process serving it exit 1, hits it once a second.
func poisonRuns(ctx context.Context, env *report.Env, dir string, p params) ([]report.Figure, error) {
	n := int(float64(p.poisonRate) * p.poisonFor.Seconds())
	failed := report.Figure{Name: fmt.Sprintf("poison request every %v: failed of %d others", p.poisonEvery, n), Results: map[string]report.Result{}}
	p99 := report.Figure{Name: "poison request: p99 latency of the others", Unit: "ms", Results: map[string]report.Result{}}
	hits := report.Figure{Name: "poison request: processes it killed", Results: map[string]report.Result{}}
	for _, name := range env.Peers {
		env.Logf("storm: poison request, %s", name)
		r, killed, end, err := poisonRun(ctx, env, filepath.Join(dir, "poison-"+name), name, p)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			env.Logf("storm: poison request, %s: %v", name, err)
			failed.Results[name] = report.Result{Note: "error"}
			continue
		}
		env.Logf("storm: poison request, %s: %d of %d failed (%s), p99 %v, %d processes killed", name, r.Failed, r.Total, r.Failures(), r.P99, killed)
		note := ""
		if r.Failed > 0 {
			note = "(" + r.Failures() + ")"
		}
		failed.Results[name] = report.Result{Samples: []float64{float64(r.Failed)}, Note: note}
		p99.Results[name] = report.Result{Samples: []float64{ms(r.P99)}}
		hits.Results[name] = report.Result{Samples: []float64{float64(killed)}, Note: end}
	}
	return []report.Figure{failed, p99, hits}, nil
}

func poisonRun(ctx context.Context, env *report.Env, dir, peerName string, p params) (Summary, int, string, error) {
	sv, ng, err := backendBehindNginx(ctx, env, dir, peerName, peer.Options{}, false)
	defer stopAll(env, sv, ng)
	if err != nil {
		return Summary{}, 0, "", err
	}
	sock := filepath.Join(dir, "sock", "backend.sock")
	until := time.Now().Add(p.poisonFor)
	killed := make(chan int, 1)
	go func() { killed <- poisoner(ctx, sock, p.poisonEvery, until, p.timeout) }()
	samples := Load{URL: "http://" + ng.addr + "/", Rate: p.poisonRate, Duration: p.poisonFor, Timeout: p.timeout}.Run(ctx)
	env.Logf("storm: poison request, %s: nginx upstream errors: %s", peerName, ng.upstreamErrors())
	return Summarize(samples), <-killed, endState(ctx, sv), nil
}

// poisoner sends GET /poison straight to the service's socket (not
// through nginx, so that nothing retries it: one request, one process)
// every `every` until `until`, and counts the requests that got no
// answer: the process serving them died.
func poisoner(ctx context.Context, sock string, every time.Duration, until time.Time, timeout time.Duration) int {
	client := unixhttp.Fresh(sock, timeout)
	killed := 0
	ticks(ctx, every, until, func() {
		resp, err := client.Get("http://backend/poison")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return // answered: the poison missed
		}
		if !isDial(err) {
			killed++ // connected, then the process died
		}
	})
	return killed
}

// isDial reports whether err is a failure to connect (no socket file,
// or nothing listening): then the request reached no process.
func isDial(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}
