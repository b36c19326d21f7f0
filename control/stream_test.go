// SPDX-License-Identifier: Apache-2.0

//go:build linux

package control

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/internal/fakesup"
	"github.com/udsvisor/udsvisor/supervisor"
)

func TestLogs(t *testing.T) {
	b := newFake()
	ts := rootServer(t, b)
	for _, l := range []string{"one", "two", "three"} {
		b.Log("web", webLine(l))
	}
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"?lines=2", []string{"two", "three"}},
		{"", []string{"one", "two", "three"}},
		{"?lines=0&follow=0", []string{"one", "two", "three"}},
	} {
		resp := get(t, ts, "/v1/services/web/logs"+c.query)
		got := readLines(t, bufio.NewReader(resp.Body), -1)
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/x-ndjson" || strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("logs%s: %d %s %q, want %q", c.query, resp.StatusCode, ct, got, c.want)
		}
	}
	for _, q := range []string{"?lines=-1", "?lines=x", "?follow=maybe", "?tail=3"} {
		if code, body := ts.do(t, "GET", "/v1/services/web/logs"+q, ""); code != http.StatusBadRequest {
			t.Errorf("logs%s: %d %s, want 400", q, code, body)
		}
	}
	if code, _ := ts.do(t, "GET", "/v1/services/nope/logs?follow=1", ""); code != http.StatusNotFound {
		t.Errorf("logs of an unknown service: %d, want 404", code)
	}
}

// TestLogsFollow streams a line appended after the request started, then
// ends the stream by going away.
func TestLogsFollow(t *testing.T) {
	b := newFake()
	ts := rootServer(t, b)
	b.Log("web", webLine("old"))
	b.Log("web", webLine("backlog"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := getCtx(t, ctx, ts, "/v1/services/web/logs?lines=1&follow=1")
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	// Once the backlog has arrived, the server has subscribed (it does so
	// first), so a line appended now must be streamed.
	if got := readLines(t, r, 1); got[0] != "backlog" {
		t.Fatalf("first line %q, want the backlog", got)
	}
	want := webLine("fresh")
	b.Log("web", want)
	var got api.LogLine
	if err := json.NewDecoder(r).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Line != want.Line || got.Pid != want.Pid || got.Stream != "stdout" || !got.Time.Equal(want.Time) {
		t.Errorf("followed %+v, want %+v", got, want)
	}
	cancel()
	// The backend's subscription ends with the client.
	waitNoSubscribers(t, b, "web")
}

// TestFollowEndsAtShutdown: a follow stream does not keep the server from
// stopping; the client sees the end of the stream.
func TestFollowEndsAtShutdown(t *testing.T) {
	b := newFake()
	ts := rootServer(t, b)
	b.Log("web", webLine("backlog"))
	resp := get(t, ts, "/v1/services/web/logs?follow=1")
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	readLines(t, r, 1)
	ts.stop()
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Errorf("after shutdown the stream gave %q, %v; want a clean end", rest, err)
	}
	waitNoSubscribers(t, b, "web")
}

func TestMetrics(t *testing.T) {
	b := newFake(supervisor.Status{Name: "we\"ird\\\n", State: supervisor.Failed, Restarts: 3},
		supervisor.Status{Name: "pool", State: supervisor.Running, Pid: 3000, Instances: []supervisor.InstanceStatus{
			{Index: 0, State: supervisor.Running, Pid: 3000, Restarts: 1},
			{Index: 1, State: supervisor.Backoff, Restarts: 4},
			{Index: 0, State: supervisor.Stopping, Pid: 2999, Leaving: true},
		}})
	ts := rootServer(t, b)
	resp := get(t, ts, "/metrics")
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("GET /metrics: %d %s", resp.StatusCode, ct)
	}
	lines := strings.Split(string(body), "\n")
	for _, want := range []string{
		"# HELP udsvisor_service_up Whether the service has a live main process (1) or not (0).",
		"# TYPE udsvisor_service_up gauge",
		`udsvisor_service_up{service="web"} 1`,
		`udsvisor_service_up{service="db"} 0`,
		"# TYPE udsvisor_service_restarts_total counter",
		`udsvisor_service_restarts_total{service="web"} 0`,
		`udsvisor_service_restarts_total{service="we\"ird\\\n"} 3`,
		"# TYPE udsvisor_service_start_time_seconds gauge",
		`udsvisor_service_start_time_seconds{service="web"} 1700000000.5`,
		"# TYPE udsvisor_service_state gauge",
		`udsvisor_service_state{service="web",state="running"} 1`,
		`udsvisor_service_state{service="web",state="stopped"} 0`,
		`udsvisor_service_state{service="db",state="stopped"} 1`,
		`udsvisor_service_state{service="db",state="failed"} 0`,
		`udsvisor_service_state{service="we\"ird\\\n",state="failed"} 1`,
		`udsvisor_process_up{service="pool",index="0"} 1`,
		`udsvisor_process_up{service="pool",index="1"} 0`,
		`udsvisor_process_restarts_total{service="pool",index="1"} 4`,
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	// One-hot: each service has exactly one state at 1.
	ones := map[string]int{}
	for _, l := range lines {
		if strings.HasPrefix(l, "udsvisor_service_state{") && strings.HasSuffix(l, "} 1") {
			ones[l[:strings.Index(l, ",state=")]]++
		}
		if strings.HasPrefix(l, `udsvisor_service_start_time_seconds{service="db"}`) {
			t.Errorf("a stopped service has a start time: %s", l)
		}
	}
	// A process on its way out shares its index with a current one: it
	// is left out, or the scrape would hold a duplicate series.
	if n := strings.Count(string(body), `udsvisor_process_up{service="pool",index="0"}`); n != 1 {
		t.Errorf("%d samples of pool's index 0, want 1", n)
	}
	if len(ones) != 4 || ones[`udsvisor_service_state{service="web"`] != 1 || ones[`udsvisor_service_state{service="db"`] != 1 {
		t.Errorf("state samples at 1: %v", ones)
	}
}

func get(t *testing.T, ts *testServer, path string) *http.Response {
	t.Helper()
	return getCtx(t, context.Background(), ts, path)
}

func getCtx(t *testing.T, ctx context.Context, ts *testServer, path string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://udsvisor"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ts.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// readLines decodes n NDJSON log lines (n < 0: until EOF) and returns
// their text.
func readLines(t *testing.T, r *bufio.Reader, n int) []string {
	t.Helper()
	var out []string
	for n < 0 || len(out) < n {
		b, err := r.ReadBytes('\n')
		if err == io.EOF && len(b) == 0 && n < 0 {
			return out
		}
		if err != nil {
			t.Fatalf("read log line %d: %v", len(out), err)
		}
		var l api.LogLine
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("log line %q: %v", b, err)
		}
		out = append(out, l.Line)
	}
	return out
}

// webLine is a line that web's process (pid 1000 in newFake) writes now.
func webLine(text string) supervisor.LogLine {
	return supervisor.LogLine{Time: time.Now().UTC(), Pid: 1000, Stream: "stdout", Line: text}
}

// waitNoSubscribers waits until the server has let go of every follow
// subscription of name.
func waitNoSubscribers(t *testing.T, b *fakesup.Supervisor, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.WaitFollowers(ctx, name, 0); err != nil {
		t.Error(err)
	}
}
