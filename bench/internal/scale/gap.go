// SPDX-License-Identifier: Apache-2.0

//go:build linux

package scale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/bench/internal/peer"
	"github.com/udsvisor/udsvisor/bench/internal/report"
	"github.com/udsvisor/udsvisor/bench/internal/unixhttp"
)

// restartGaps measures, for one backend under each peer, SIGKILL of its
// process → the next successful answer on its socket, p.gapSamples
// times. A process is killed only once it has lived p.gapSettle (1.1 s),
// so that no peer's guard against a crash loop applies (runsv waits a
// second before restarting a process that lived less, supervisord's
// startsecs and udsvisor's min_uptime are 1 s): this is the restart
// itself, and the kill storm shows the guards at work. (s6-supervise
// pauses a second before every restart of a service that never
// reported readiness, as here: the backend does not speak s6's
// notification-fd protocol.) All peers run at once; their kills fall in
// slots p.gapPeriod apart, each peer at its own offset in the period, so
// that no two restarts overlap; a peer whose restart takes about a
// second kills every other slot, and gets fewer samples before
// p.gapFor ends the run.
func restartGaps(ctx context.Context, env *report.Env, dir string, p params) (report.Figure, error) {
	fig := figure(fmt.Sprintf("restart gap (SIGKILL → next answer), median of %d", p.gapSamples), "ms", "≤ 5 ms")
	type gapRun struct {
		name    string
		sv      peer.Peer
		sock    string
		samples []float64
		err     error
	}
	var runs []*gapRun
	defer func() {
		for _, r := range runs {
			if r.sv != nil {
				if err := r.sv.Stop(); err != nil {
					env.Logf("scale: %v", err)
				}
			}
		}
	}()
	for _, name := range env.Peers {
		r := &gapRun{name: name, sock: filepath.Join(dir, name, "sock", "backend.sock")}
		runs = append(runs, r)
		r.sv, r.err = startBackend(ctx, env, filepath.Join(dir, name), name, r.sock)
		if ctx.Err() != nil {
			return fig, ctx.Err()
		}
	}
	start := time.Now().Add(p.gapSettle)
	end := start.Add(p.gapFor)
	var wg sync.WaitGroup
	for i, r := range runs {
		if r.err != nil {
			continue
		}
		offset := p.gapPeriod * time.Duration(i) / time.Duration(len(runs))
		wg.Go(func() {
			client := unixhttp.Fresh(r.sock, 3*time.Second)
			slot := start.Add(offset)
			for range p.gapSamples {
				if slot.After(end) {
					return
				}
				if err := sleep(ctx, time.Until(slot)); err != nil {
					r.err = err
					return
				}
				g, err := oneGap(ctx, r.sv, client)
				if err != nil {
					r.err = err
					return
				}
				r.samples = append(r.samples, ms(g))
				slot = nextSlot(slot, g, p.gapPeriod, p.gapSettle)
			}
		})
	}
	wg.Wait()
	for _, r := range runs {
		if r.err != nil {
			env.Logf("scale: restart gap under %s: %v", r.name, r.err)
			fig.Results[r.name] = report.Result{Note: "error"}
			continue
		}
		res := report.Result{Samples: r.samples}
		if len(r.samples) < p.gapSamples {
			res.Note = fmt.Sprintf("(%d kills)", len(r.samples))
		}
		fig.Results[r.name] = res
		env.Logf("scale: restart gap under %s: median %.1f ms", r.name, fig.Results[r.name].Median())
	}
	return fig, ctx.Err()
}

// nextSlot is the first slot after `slot`, `period` apart, at which a
// process that started `gap` after `slot` has lived `settle`. The gap is
// at most 5 s (see answer), so ten periods always suffice.
func nextSlot(slot time.Time, gap, period, settle time.Duration) time.Time {
	ready := slot.Add(gap + settle)
	next := slot.Add(period)
	for i := 0; i < 10 && next.Before(ready); i++ {
		next = next.Add(period)
	}
	return next
}

// startBackend runs one backend, "backend", under the peer and waits
// until it answers on its socket.
func startBackend(ctx context.Context, env *report.Env, dir, name, sock string) (peer.Peer, error) {
	sv, err := peer.New(name, env, dir, peer.Options{})
	if err != nil {
		return nil, err
	}
	if err := sv.Prepare([]peer.Service{peer.Backend("backend", env.Backend, sock)}); err != nil {
		return sv, err
	}
	if err := sv.Launch(ctx); err != nil {
		return sv, err
	}
	if _, err := sv.WaitRunning(ctx, 30*time.Second); err != nil {
		return sv, err
	}
	_, err = answer(ctx, unixhttp.Fresh(sock, 3*time.Second), 0, time.Now().Add(10*time.Second))
	return sv, err
}

// oneGap kills the service's process and times the next answer from
// another process.
func oneGap(ctx context.Context, sv peer.Peer, client *http.Client) (time.Duration, error) {
	pid, err := sv.MainPid(ctx, "backend")
	if err != nil {
		return 0, err
	}
	if pid == 0 {
		return 0, errors.New("no process to kill")
	}
	t := time.Now()
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		return 0, fmt.Errorf("kill %d: %w", pid, err)
	}
	at, err := answer(ctx, client, pid, t.Add(5*time.Second))
	return at.Sub(t), err
}

// answer sends GET / on new connections until a process other than
// `not` answers 200, and returns when. Where the supervisor holds the
// socket, the request waits in the backlog for the next process; where
// the process bound it, connecting fails until the next one has bound
// it again, and is tried again every 200 µs.
func answer(ctx context.Context, client *http.Client, not int, deadline time.Time) (time.Time, error) {
	var last error
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return time.Time{}, err
		}
		resp, err := client.Get("http://backend/")
		if err == nil {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, 256))
			resp.Body.Close()
			at := time.Now()
			pid, perr := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(string(body), "ok ")))
			switch {
			case rerr != nil:
				last = rerr
			case resp.StatusCode != http.StatusOK || perr != nil:
				last = fmt.Errorf("answer %s %q", resp.Status, body)
			case pid != not:
				return at, nil
			}
		} else {
			last = err
		}
		// A poll, and the measurement itself: the gap is what a client
		// sees, and a client has no event for "a process listens on
		// the name again" (an inotify of the new name fires at bind,
		// before listen). 200 µs bounds the error of each sample.
		time.Sleep(200 * time.Microsecond)
	}
	return time.Time{}, fmt.Errorf("no answer from a new process within the limit (last: %v)", last)
}
