// SPDX-License-Identifier: Apache-2.0

//go:build linux

package proxypath

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// Outputs of wrk 4.1.0 (Debian 12), captured on this project's machine.
const (
	// A clean run through nginx.
	wrkOK = `Running 1s test @ http://127.0.0.1:18080/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.46ms    1.94ms  19.92ms   86.70%
    Req/Sec    26.97k     4.84k   39.40k    66.67%
  Latency Distribution
     50%  655.00us
     75%    2.03ms
     90%    3.94ms
     99%    8.67ms
  56594 requests in 1.10s, 6.75MB read
Requests/sec:  51496.80
Transfer/sec:      6.14MB
`
	// nginx with its upstream stopped: every answer a 502.
	wrk502 = `Running 1s test @ http://127.0.0.1:19002/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    10.56ms    4.63ms  18.52ms   72.13%
    Req/Sec     2.35k   323.74     3.00k    75.00%
  Latency Distribution
     50%   11.87ms
     75%   12.71ms
     90%   15.41ms
     99%   17.22ms
  4686 requests in 1.00s, 1.40MB read
  Non-2xx or 3xx responses: 4686
Requests/sec:   4683.01
Transfer/sec:      1.40MB
`
	// A backend that closes every connection: nothing completes.
	wrkNothing = `Running 1s test @ http://127.0.0.1:18080/poison
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.00us    0.00us   0.00us    -nan%
    Req/Sec     0.00      0.00     0.00      -nan%
  Latency Distribution
     50%    0.00us
     75%    0.00us
     90%    0.00us
     99%    0.00us
  0 requests in 1.10s, 0.00B read
  Socket errors: connect 0, read 50, write 87833, timeout 0
Requests/sec:      0.00
Transfer/sec:       0.00B
`
)

func TestParseWrk(t *testing.T) {
	for _, tc := range []struct {
		name string
		out  string
		want wrkResult
	}{
		{"ok", wrkOK, wrkResult{Requests: 56594, RPS: 51496.80, P99: 8670 * time.Microsecond}},
		{"502", wrk502, wrkResult{Requests: 4686, RPS: 4683.01, P99: 17220 * time.Microsecond, Non2xx: 4686}},
		{"nothing", wrkNothing, wrkResult{RPS: 0, SocketErrors: 50 + 87833}},
		{
			// A Stdev column that ends in "99%" is not the 99% line, and
			// a p99 of seconds is read in seconds.
			"stdev 99% and seconds",
			strings.NewReplacer("86.70%", "98.99%", "     99%    8.67ms", "     99%    1.25s").Replace(wrkOK),
			wrkResult{Requests: 56594, RPS: 51496.80, P99: 1250 * time.Millisecond},
		},
		{
			"every kind of socket error",
			strings.Replace(wrkOK, "Requests/sec:", "  Socket errors: connect 1, read 20, write 300, timeout 4000\nRequests/sec:", 1),
			wrkResult{Requests: 56594, RPS: 51496.80, P99: 8670 * time.Microsecond, SocketErrors: 4321},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseWrk(tc.out)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if want := tc.want.Non2xx + tc.want.SocketErrors; got.Errors() != want {
				t.Errorf("Errors() = %d, want %d", got.Errors(), want)
			}
		})
	}
}

func TestParseWrkRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, out, wantErr string
	}{
		{"empty", "", "no Requests/sec"},
		{"wrk's usage", "Usage: wrk <options> <url>\n  Options:\n", "no Requests/sec"},
		{"no --latency", dropLines(wrkOK, "Latency Distribution", "50%", "75%", "90%", "99%"), "no 99% latency"},
		{"no count", dropLines(wrkOK, "requests in"), "no request count"},
		{"bad unit", strings.Replace(wrkOK, "8.67ms", "8.67ns", 1), "no unit"},
		{"bad number", strings.Replace(wrkOK, "51496.80", "lots", 1), "Requests/sec"},
		{"bad socket errors", strings.Replace(wrkNothing, "read 50", "read", 1), "socket error count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseWrk(tc.out)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("parseWrk = %+v, %v; want an error with %q", got, err, tc.wantErr)
			}
		})
	}
}

func TestParseWrkDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"655.00us": 655 * time.Microsecond,
		"2.03ms":   2030 * time.Microsecond,
		"1.20s":    1200 * time.Millisecond,
		"1.50m":    90 * time.Second,
		"8.03ms":   8030 * time.Microsecond,
		"0.00us":   0,
	} {
		if got, err := parseWrkDuration(in); err != nil || got != want {
			t.Errorf("parseWrkDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "ms", "12", "-1.00ms", "1.2.3ms"} {
		if got, err := parseWrkDuration(in); err == nil {
			t.Errorf("parseWrkDuration(%q) = %v, want an error", in, got)
		}
	}
}

// TestOrder pins the interleaving: every round runs each case once, the
// three cases of one keepalive mode (which the ratio rows compare) back
// to back, and over six rounds every case runs first once and each
// transport holds each place within its mode's three twice.
func TestOrder(t *testing.T) {
	n := 2 * int(numTransports)
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	var firsts []int
	places := map[[2]int]int{} // {transport, place within the three}: rounds
	for round := 0; round < 12; round++ {
		o := order(round)
		if s := slices.Sorted(slices.Values(o)); !slices.Equal(s, all) {
			t.Fatalf("round %d: order %v is not each case once", round, o)
		}
		for k := 0; k < n; k += int(numTransports) {
			for j := k; j < k+int(numTransports); j++ {
				if o[j]/int(numTransports) != o[k]/int(numTransports) {
					t.Errorf("round %d: order %v splits a keepalive mode", round, o)
				}
				if round < 6 {
					places[[2]int{o[j] % int(numTransports), j - k}]++
				}
			}
		}
		if round < 6 {
			firsts = append(firsts, o[0])
		}
	}
	if s := slices.Sorted(slices.Values(firsts)); !slices.Equal(s, all) {
		t.Errorf("first cases of rounds 1–6: %v, want each case once", firsts)
	}
	for tr := range numTransports {
		for place := range int(numTransports) {
			if got := places[[2]int{int(tr), place}]; got != 4 {
				t.Errorf("rounds 1–6: %s in place %d of its mode's three %d times, want 4 (twice per mode)", tr, place+1, got)
			}
		}
	}
}

// dropLines removes the lines of s that contain any of subs.
func dropLines(s string, subs ...string) string {
	var keep []string
	for _, line := range strings.Split(s, "\n") {
		if !slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(line, sub) }) {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}
