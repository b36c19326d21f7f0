// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil/testapp"
)

// Fault "restart gap": the app takes 2 s to come back. With the default
// backlog of 4096, 500 clients that connect during the gap all wait in the
// kernel and are served; none is refused. With backlog = 16 the queue
// overflows and the overflow fails at once with EAGAIN (what nginx reports
// as 502 "Resource temporarily unavailable"), never with ECONNREFUSED or a
// missing socket: the backlog is the knob, as services.toml.example says.
func TestFaultRestartGapBacklog(t *testing.T) {
	users(t)
	h := start(t, `
[services.big]
command = ["$APP", "-delay", "2s"]
user = "udsv-a"
min_uptime = "100ms"
[[services.big.sockets]]
path = "$DIR/big.sock"

[services.small]
command = ["$APP", "-delay", "2s"]
user = "udsv-a"
min_uptime = "100ms"
[[services.small.sockets]]
path = "$DIR/small.sock"
backlog = 16
`)
	for _, c := range []struct {
		name      string
		wantAgain bool
	}{{"big", false}, {"small", true}} {
		sock := filepath.Join(h.dir, c.name+".sock")
		var rep testapp.Report
		var err error
		for range 100 { // the first process also takes 2 s
			if rep, err = getReport(sock); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("%s never served: %v", c.name, err)
		}
		if err := unix.Kill(rep.Pid, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		const n = 500
		var wg sync.WaitGroup
		var mu sync.Mutex
		served, again, other := 0, 0, []error{}
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := getReport(sock)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					served++
				case errors.Is(err, unix.EAGAIN):
					again++
				default:
					other = append(other, err)
				}
			}()
		}
		wg.Wait()
		t.Logf("%s: %d of %d served, %d EAGAIN, %d other", c.name, served, n, again, len(other))
		for _, err := range other[:min(len(other), 3)] {
			t.Errorf("%s: %v", c.name, err)
		}
		if c.wantAgain && again == 0 {
			t.Errorf("%s: backlog 16 held %d connections during a 2 s gap; want overflow with EAGAIN", c.name, n)
		}
		if !c.wantAgain && served != n {
			t.Errorf("%s: %s", c.name, fmt.Sprintf("%d of %d served", served, n))
		}
	}
}
