// SPDX-License-Identifier: Apache-2.0

//go:build linux

package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/internal/testutil"
)

// The zero-downtime operations behind real nginx, on the config that
// `udsvisor proxy nginx` wrote, with load running throughout: an
// overlapping restart of an app that needs 2 s to start, a 3 s pause,
// and scaling up and down. No request fails. (How long the slowest
// request waited is the benchmark's to report, not a test's.)
func TestZeroDowntimeBehindNginx(t *testing.T) {
	testutil.RequireCommand(t, "/usr/sbin/nginx")
	testutil.EnsureUser(t, "udsv-app")
	s := startStack(t, oneSocketApp("app", `["$APP", "-graceful", "-delay", "2s", "-notify", "READY=1"]`, "www-data", `
ready = "notify"
restart_mode = "overlap"
`))
	addr := freePort(t)
	startNginx(t, proxyConfig(t, "nginx", s.cfg, addr), addr)
	fetch(t, "http://"+addr+"/warm-up")
	ctl := func(args ...string) {
		t.Helper()
		if out, err := s.ctl(args...); err != nil {
			t.Fatalf("ctl %v: %v\n%s", args, err, out)
		}
	}
	for _, op := range []struct {
		name   string
		window time.Duration
		do     func()
	}{
		{"overlapping restart", 4 * time.Second, func() { ctl("restart", "app") }},
		{"pause for 3 s", 5 * time.Second, func() {
			ctl("pause", "app")
			// The maintenance window itself: requests wait in the
			// backlog meanwhile.
			time.Sleep(3 * time.Second)
			ctl("resume", "app")
		}},
		{"scale up and down", 3 * time.Second, func() {
			ctl("scale", "app", "3")
			ctl("scale", "app", "1")
		}},
		{"upgrade udsvisor in place", 3 * time.Second, func() {
			before, err := s.services()
			ctl("upgrade")
			after, err2 := s.services()
			if err != nil || err2 != nil || fmt.Sprint(pidsOf(before)) != fmt.Sprint(pidsOf(after)) {
				t.Errorf("ctl upgrade changed the processes: %v (%v), then %v (%v)", pidsOf(before), err, pidsOf(after), err2)
			}
		}},
	} {
		t.Run(op.name, func(t *testing.T) {
			done := make(chan tally, 1) // the load's one result
			go func() { done <- load("http://"+addr+"/load", 8, time.Now().Add(op.window)) }()
			op.do()
			res := <-done
			t.Logf("%d requests (%v)", res.total(), res)
			if res.failed() != 0 || res.total() == 0 {
				t.Errorf("%d of %d requests failed (%v); examples: %q", res.failed(), res.total(), res, res.examples)
			}
		})
	}
}

// pidsOf maps each service to its pids.
func pidsOf(svcs []api.Service) map[string][]int {
	m := make(map[string][]int, len(svcs))
	for _, svc := range svcs {
		m[svc.Name] = svc.Pids
	}
	return m
}
