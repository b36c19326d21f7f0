// SPDX-License-Identifier: Apache-2.0

//go:build linux

package storm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(100 - i) // 100 … 1, unsorted
	}
	for _, c := range []struct {
		vals []float64
		p    float64
		want float64
	}{
		{hundred, 99, 99},
		{hundred, 100, 100},
		{hundred, 50, 50},
		{hundred, 1, 1},
		{[]float64{7}, 99, 7},
		{[]float64{3, 1, 2}, 50, 2},
		// 99 % of 10 values is 9.9: the 10th value, the largest.
		{[]float64{1, 1, 1, 1, 1, 1, 1, 1, 1, 3000}, 99, 3000},
		{[]float64{1, 2, 3, 4}, 0.001, 1},
	} {
		if got := Percentile(c.vals, c.p); got != c.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", c.vals, c.p, got, c.want)
		}
	}
	if got := Percentile(nil, 99); !math.IsNaN(got) {
		t.Errorf("Percentile(nil) = %v, want NaN", got)
	}
}

func TestPercentileLeavesInputAlone(t *testing.T) {
	vals := []float64{3, 1, 2}
	Percentile(vals, 50)
	if vals[0] != 3 || vals[1] != 1 || vals[2] != 2 {
		t.Errorf("input reordered: %v", vals)
	}
}

// timeoutErr is a net.Error that timed out, as a dial or read deadline
// reports it.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	refused := &url.Error{Op: "Get", URL: "http://x/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	reset := &url.Error{Op: "Get", URL: "http://x/", Err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}
	clientTimeout := &url.Error{Op: "Get", URL: "http://x/", Err: fmt.Errorf("awaiting headers: %w", context.DeadlineExceeded)}
	for _, c := range []struct {
		name string
		resp *http.Response
		err  error
		want Outcome
	}{
		{"200", &http.Response{StatusCode: 200}, nil, OK},
		{"502", &http.Response{StatusCode: 502}, nil, Status5xx},
		{"504", &http.Response{StatusCode: 504}, nil, Status5xx},
		{"404", &http.Response{StatusCode: 404}, nil, OtherStatus},
		{"client time-out", nil, clientTimeout, Timeout},
		{"net timeout", nil, &url.Error{Op: "Get", URL: "http://x/", Err: timeoutErr{}}, Timeout},
		{"deadline", nil, os.ErrDeadlineExceeded, Timeout},
		{"refused", nil, refused, Refused},
		{"reset", nil, reset, OtherError},
		{"EOF", nil, &url.Error{Op: "Get", URL: "http://x/", Err: errors.New("EOF")}, OtherError},
	} {
		if got := Classify(c.resp, c.err); got != c.want {
			t.Errorf("%s: Classify = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	var samples []Sample
	for i := range 98 {
		samples = append(samples, Sample{Latency: time.Duration(i+1) * time.Millisecond, Outcome: OK})
	}
	samples = append(samples,
		Sample{Latency: time.Millisecond, Outcome: Status5xx},
		Sample{Latency: 3 * time.Second, Outcome: Timeout})
	s := Summarize(samples)
	if s.Total != 100 || s.Failed != 2 || s.By[Status5xx] != 1 || s.By[Timeout] != 1 {
		t.Errorf("Summarize = %+v", s)
	}
	// 100 samples: the 99th smallest latency, 98 ms.
	if s.P99 != 98*time.Millisecond {
		t.Errorf("P99 = %v, want 98ms", s.P99)
	}
	if got, want := s.Failures(), "5xx 1, time-out 1"; got != want {
		t.Errorf("Failures = %q, want %q", got, want)
	}
}
