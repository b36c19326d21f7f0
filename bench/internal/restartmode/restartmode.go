// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Package restartmode measures what a client sees while udsvisor
// restarts a service that needs 2 s to start, under steady load, in each
// restart_mode: with stop-start, connections wait in the backlog for the
// whole start-up; with overlap, the old process serves until the new one
// has said READY=1. The backend is the integration test app (-delay 2s,
// -notify READY=1, -graceful: it stops accepting on SIGTERM and answers
// what it had). Only udsvisor has these modes; the peers have no row.
package restartmode

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/udsvisor/udsvisor/bench/internal/peer"
	"github.com/udsvisor/udsvisor/bench/internal/report"
	"github.com/udsvisor/udsvisor/bench/internal/unixhttp"
)

// startUp is how long the backend takes before it serves.
const startUp = 2 * time.Second

// workers is how many clients load the service, each on a fresh
// connection per request so that every request reaches whichever process
// accepts by then.
const workers = 8

// Run measures both modes and returns their figures.
func Run(ctx context.Context, env *report.Env) ([]report.Figure, error) {
	rounds := 3
	if env.Quick {
		rounds = 1
	}
	var figs []report.Figure
	for _, mode := range []string{"stop-start", "overlap"} {
		slowest := report.Figure{Name: "restart of a 2 s start-up under load, " + mode + ": slowest request", Unit: "ms",
			Results: map[string]report.Result{}}
		failed := report.Figure{Name: "restart of a 2 s start-up under load, " + mode + ": failed requests",
			Target: "0", Results: map[string]report.Result{}}
		if mode == "overlap" {
			slowest.Target = "< 1000 ms"
		}
		var slow, fail []float64
		total := 0
		for r := range rounds {
			env.Logf("restartmode: %s, round %d of %d", mode, r+1, rounds)
			res, err := round(ctx, env, mode)
			if err != nil {
				return figs, fmt.Errorf("%s: %w", mode, err)
			}
			slow = append(slow, float64(res.slowest.Milliseconds()))
			fail = append(fail, float64(res.failed))
			total += res.total
		}
		slowest.Results[report.Udsvisor] = report.Result{Samples: slow}
		failed.Results[report.Udsvisor] = report.Result{Samples: fail, Note: fmt.Sprintf("of %d", total)}
		for _, p := range env.Peers[1:] {
			slowest.Results[p] = report.Result{Note: "no restart_mode"}
			failed.Results[p] = report.Result{Note: "no restart_mode"}
		}
		figs = append(figs, slowest, failed)
	}
	return figs, nil
}

type outcome struct {
	slowest       time.Duration
	failed, total int
}

// round starts udsvisor with the service, loads it, restarts it once it
// serves, and keeps loading until a new process has answered for a
// while.
func round(ctx context.Context, env *report.Env, mode string) (outcome, error) {
	dir, err := os.MkdirTemp(env.Dir, "restart-")
	if err != nil {
		return outcome{}, err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		return outcome{}, err
	}
	sock, ctl := filepath.Join(dir, "app.sock"), filepath.Join(dir, "control.sock")
	cfg := filepath.Join(dir, "services.toml")
	text := fmt.Sprintf(`[supervisor]
control_socket = %q

[services.app]
command = [%q, "-graceful", "-delay", %q, "-notify", "READY=1"]
user = %q
ready = "notify"
restart_mode = %q
[[services.app.sockets]]
path = %q
`, ctl, env.TestApp, startUp.String(), peer.User, mode, sock)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		return outcome{}, err
	}
	up := exec.CommandContext(ctx, env.Udsvisor, "up", "-c", cfg)
	logs, err := up.StderrPipe()
	if err != nil {
		return outcome{}, err
	}
	if err := up.Start(); err != nil {
		return outcome{}, err
	}
	defer func() {
		up.Process.Signal(os.Interrupt)
		up.Wait()
	}()
	// Bound once "udsvisor is up" is logged; a request made then waits
	// in the backlog for the start-up.
	if err := waitLine(logs, "udsvisor is up"); err != nil {
		return outcome{}, err
	}
	go io.Copy(io.Discard, logs)
	client := unixhttp.Fresh(sock, 30*time.Second)
	first, err := get(ctx, client)
	if err != nil {
		return outcome{}, fmt.Errorf("the service never answered: %w", err)
	}

	stop := make(chan struct{})
	results := make(chan outcome, workers) // one each; nobody blocks
	var newPid sync.Once
	served := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var o outcome
			for {
				select {
				case <-stop:
					results <- o
					return
				default:
				}
				t0 := time.Now()
				pid, err := get(ctx, client)
				o.slowest = max(o.slowest, time.Since(t0))
				o.total++
				switch {
				case err != nil:
					o.failed++
				case pid != first:
					newPid.Do(func() { close(served) })
				}
			}
		}()
	}
	if err := pause(ctx, 500*time.Millisecond); err != nil { // the load settles before the restart
		close(stop)
		wg.Wait()
		return outcome{}, err
	}
	restart := exec.CommandContext(ctx, env.Udsvisor, "ctl", "-s", ctl, "restart", "app")
	if out, err := restart.CombinedOutput(); err != nil {
		close(stop)
		wg.Wait()
		return outcome{}, fmt.Errorf("ctl restart: %v: %s", err, out)
	}
	select {
	case <-served:
	case <-time.After(30 * time.Second):
		close(stop)
		wg.Wait()
		return outcome{}, errors.New("no new process answered within 30 s of the restart")
	}
	err = pause(ctx, 500*time.Millisecond) // the new process serves for a while
	close(stop)
	wg.Wait()
	var all outcome
	for range workers {
		o := <-results
		all.slowest = max(all.slowest, o.slowest)
		all.failed += o.failed
		all.total += o.total
	}
	return all, err
}

// get asks the test app for its report and returns the pid that answered.
func get(ctx context.Context, client *http.Client) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://app/", nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /: %s", resp.Status)
	}
	var rep struct {
		Pid int `json:"pid"`
	}
	return rep.Pid, json.NewDecoder(resp.Body).Decode(&rep)
}

// pause lets d pass, or less if ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitLine reads r until a line contains want.
func waitLine(r io.Reader, want string) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if strings.Contains(sc.Text(), want) {
			return nil
		}
	}
	return fmt.Errorf("udsvisor ended before it logged %q", want)
}
