// SPDX-License-Identifier: Apache-2.0

//go:build linux

package integration

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// Load and kill rhythm of the kill-under-load test: the backend is
// SIGKILLed every killEvery for loadFor while loadWorkers clients send
// requests through nginx without pause.
const (
	loadWorkers = 8
	loadFor     = 10 * time.Second
	killEvery   = 300 * time.Millisecond
)

// restartFast keeps restarting a backend killed every killEvery: a run
// longer than min_uptime is no failed start, and start_limit 0 never
// gives up.
const restartFast = `
restart = "always"
min_uptime = "100ms"
start_limit = 0
`

// run is the result of one load run under kills.
type run struct {
	tally
	kills    int
	upstream map[string]int // nginx's upstream errors by cause
}

// loadWhileKilling runs the load against url while a killer sends
// SIGKILL to service's current process, as ctl status reports it, every
// killEvery; a process is killed once.
func loadWhileKilling(t *testing.T, s *stack, service, url string) run {
	t.Helper()
	until := time.Now().Add(loadFor)
	type result struct {
		kills int
		err   error
	}
	killer := make(chan result, 1) // the killer's single result
	go func() {
		tick := time.NewTicker(killEvery)
		defer tick.Stop()
		var r result
		last := 0
		for now := range tick.C {
			if now.After(until) {
				break
			}
			svc, err := s.service(service)
			if err != nil {
				r.err = errors.Join(r.err, err)
				continue
			}
			if svc.Pid == 0 || svc.Pid == last {
				continue // the restart is not there yet
			}
			if err := unix.Kill(svc.Pid, unix.SIGKILL); err != nil {
				r.err = errors.Join(r.err, fmt.Errorf("kill %d: %w", svc.Pid, err))
				continue
			}
			r.kills, last = r.kills+1, svc.Pid
		}
		killer <- r
	}()
	tl := load(url, loadWorkers, until)
	r := <-killer
	if r.err != nil {
		t.Errorf("killer: %v", r.err)
	}
	return run{tally: tl, kills: r.kills}
}

// The promise under load: with udsvisor owning the socket, SIGKILLing
// the backend every 300 ms for 10 s under steady load through nginx (on
// the config `udsvisor proxy nginx` generated) fails no request at all.
// The same run against the same app binding its own socket, the way apps
// do without udsvisor, is measured side by side and reported, not
// asserted.
func TestKillUnderLoad(t *testing.T) {
	testutil.RequireCommand(t, "/usr/sbin/nginx")
	testutil.EnsureUser(t, "udsv-app")
	var owned, self run

	t.Run("udsvisor-owned", func(t *testing.T) {
		s := startStack(t, oneSocketApp("backend", `["$APP"]`, "www-data", restartFast))
		sock := filepath.Join(s.dir, "backend", "backend.sock")
		before := testutil.Birth(t, sock)
		addr := freePort(t)
		errorLog := startNginx(t, proxyConfig(t, "nginx", s.cfg, addr), addr)
		fetch(t, "http://"+addr+"/warm-up")

		owned = loadWhileKilling(t, s, "backend", "http://"+addr+"/load")
		owned.upstream = upstreamErrors(t, errorLog)
		t.Logf("%d requests (%v), %d kills; nginx upstream errors, retried ones included: %v", owned.total(), owned.tally, owned.kills, owned.upstream)
		if owned.failed() != 0 {
			t.Errorf("%d of %d requests failed (%v); nginx upstream errors: %v; examples: %q", owned.failed(), owned.total(), owned.tally, owned.upstream, owned.examples)
		}
		if owned.kills <= 20 {
			t.Errorf("only %d kills in %v", owned.kills, loadFor)
		}
		if after := testutil.Birth(t, sock); after != before {
			t.Errorf("socket re-created under the kills: %s, was %s", after, before)
		}
		svc, err := s.service("backend")
		if err != nil {
			t.Fatal(err)
		}
		if svc.Restarts < owned.kills {
			t.Errorf("%d restarts for %d kills", svc.Restarts, owned.kills)
		}
	})

	t.Run("self-bound", func(t *testing.T) {
		app := testutil.EnsureUser(t, "udsv-app")
		// The app must be able to unlink and re-create its socket, so
		// its directory is its own.
		dir := filepath.Join(testutil.RunDir(t), "self")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, int(app.UID), int(app.GID)); err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(dir, "backend.sock")
		// No [[sockets]]: udsvisor only supervises.
		s := startStack(t, `
[services.backend]
command = ["$APP", "-bind", "`+sock+`"]
user = "udsv-app"`+restartFast)
		addr := freePort(t)
		// udsvisor owns no socket here, so `udsvisor proxy` has nothing
		// to generate; the config is written by hand in the same shape.
		errorLog := startNginx(t, handNginx(addr, []route{{"/", sock}}), addr)
		// The app says when it listens; udsvisor logs the line.
		s.up.WaitLog(t, "the backend listening", func(e testutil.Entry) bool {
			return e.Str("service") == "backend" && e.Msg == "listening on "+sock
		})
		fetch(t, "http://"+addr+"/warm-up")

		self = loadWhileKilling(t, s, "backend", "http://"+addr+"/load")
		self.upstream = upstreamErrors(t, errorLog)
		t.Logf("%d requests (%v), %d kills; nginx upstream errors, retried ones included: %v", self.total(), self.tally, self.kills, self.upstream)
	})

	pct := 0.0
	if self.total() > 0 {
		pct = 100 * float64(self.failed()) / float64(self.total())
	}
	t.Logf("kill -9 every %v for %v, %d clients through nginx:\n"+
		"\tudsvisor-owned socket: %d requests, %d failed, %d kills; nginx upstream errors %v\n"+
		"\tself-bound socket:     %d requests, %d failed (%.2f%%), %d kills; nginx upstream errors %v",
		killEvery, loadFor, loadWorkers,
		owned.total(), owned.failed(), owned.kills, owned.upstream,
		self.total(), self.failed(), pct, self.kills, self.upstream)
}
