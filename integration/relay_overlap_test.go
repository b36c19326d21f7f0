// SPDX-License-Identifier: Apache-2.0

//go:build linux

package integration

import (
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// A relay service with restart_mode = "overlap", reloaded under load to
// a definition whose app dies before it listens: the relay accepts
// nothing until its app answers, so the new process never counts as
// started, the reload reports it failed, and the old process serves
// throughout. (Were the relay to accept at once, udsvisor would take the
// new process for started and stop the old one.)
func TestRelayOverlapWaitsForTheApp(t *testing.T) {
	py := testutil.RequireCommand(t, "/usr/bin/python3")
	testutil.EnsureUser(t, "udsv-app")
	_, port, _ := net.SplitHostPort(freePort(t))
	good := fmt.Sprintf(`[%q, "-m", "http.server", "--bind", "127.0.0.1", "--directory", "/usr/share/common-licenses", %q]`, py, port)
	s := startStack(t, fmt.Sprintf(`
[services.ov]
command = %s
user = "udsv-app"
restart_mode = "overlap"
[[services.ov.sockets]]
path = "$DIR/ov/http.sock"
[services.ov.relay]
port = %s
`, good, port))
	before, err := s.service("ov")
	if err != nil {
		t.Fatal(err)
	}
	client := unixClient(s.dir + "/ov/http.sock")
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get("http://localhost/Apache-2.0")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("%s", resp.Status)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
			}
		}()
	}

	cfg, err := os.ReadFile(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	broken := fmt.Sprintf(`[%q, "-c", "import sys, time; time.sleep(0.3); sys.exit(1)"]`, py)
	if err := os.WriteFile(s.cfg, []byte(strings.Replace(string(cfg), good, broken, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := s.ctl("reload")
	time.Sleep(500 * time.Millisecond) // load on the old process after the reload too
	close(stop)
	wg.Wait()

	if err == nil || !strings.Contains(out, "failed:") || !strings.Contains(out, "ov") {
		t.Errorf("ctl reload of a definition whose app never listens: %v\n%s\nwant a failure naming ov", err, out)
	}
	after, err := s.service("ov")
	if err != nil || after.Pid != before.Pid || after.State != "running" {
		t.Errorf("after the failed reload: %+v, %v; want the old process %d running", after, err, before.Pid)
	}
	t.Logf("%d requests served, %d failed", ok.Load(), failed.Load())
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Errorf("%d of %d requests failed during the reload, the first: %v", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
	}
}
