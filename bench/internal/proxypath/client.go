// SPDX-License-Identifier: Apache-2.0

//go:build linux

package proxypath

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/udsvisor/udsvisor/bench/internal/proc"
)

// warmup is how many requests go through each nginx port, each checked to
// be the right backend's "ok PID", before wrk measures anything: it
// proves the routing, and the one-off costs of the first requests (nginx's
// and the backend's first allocations) stay out of the measurement.
const warmup = 200

func (p *part) url(c *pathCase) string { return fmt.Sprintf("http://127.0.0.1:%d/", c.port) }

// verifyPorts sends n requests through each of nginx's ports and checks
// every answer: status 200 and "ok PID" with the pid of the backend that
// case is meant to reach. wrk cannot check bodies without a Lua hook that
// would slow it down, so this is where the answers are proven right;
// during the runs, wrk's error-status and socket-error counts stand for it.
func (p *part) verifyPorts(ctx context.Context, n int) error {
	client := tcpClient()
	defer client.CloseIdleConnections()
	for _, c := range p.cases {
		want := map[transport]int{unixSocket: p.unixPID, tcpLoopback: p.tcpPID, relayed: p.relayPID}[c.transport]
		for i := 0; i < n; i++ {
			pid, err := get(ctx, client, p.url(c))
			if err != nil {
				return fmt.Errorf("nginx, %s: request %d of %d: %w", c, i+1, n, err)
			}
			if pid != want {
				return fmt.Errorf("nginx, %s: answered by pid %d, want the backend's %d", c, pid, want)
			}
		}
	}
	return nil
}

// waitAnswer polls url until it answers "ok PID" (with wantPID, unless 0)
// and returns the pid. It fails at once if q exits, and after 20 s or
// 400 attempts, whichever comes first.
func waitAnswer(ctx context.Context, client *http.Client, url string, q *proc.Child, wantPID int) (int, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, 20*time.Second, errors.New("none within 20 s"))
	defer cancel()
	var last error
	for attempt := 0; attempt < 400; attempt++ {
		if err := q.Exited(); err != nil {
			return 0, err
		}
		pid, err := get(ctx, client, url)
		switch {
		case err == nil && wantPID != 0 && pid != wantPID:
			return 0, fmt.Errorf("answered by pid %d, want %d", pid, wantPID)
		case err == nil:
			return pid, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("no answer (%w); last error: %v", context.Cause(ctx), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("no answer after 400 attempts; last error: %v", last)
}

// get sends one GET and returns the pid of the backend's "ok PID" answer.
func get(ctx context.Context, client *http.Client, url string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return 0, fmt.Errorf("GET %s: body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s: %q", url, resp.Status, body)
	}
	pid, ok := strings.CutPrefix(strings.TrimSpace(string(body)), "ok ")
	n, err := strconv.Atoi(pid)
	if !ok || err != nil {
		return 0, fmt.Errorf("GET %s: %q is not the backend's \"ok PID\"", url, body)
	}
	return n, nil
}

// tcpClient talks to loopback addresses, never through a proxy from the
// environment.
func tcpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}
}
