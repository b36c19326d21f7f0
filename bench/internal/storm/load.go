// SPDX-License-Identifier: Apache-2.0

//go:build linux

package storm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Outcome is how one request ended.
type Outcome int

// The outcomes, in the order they are reported.
const (
	OK          Outcome = iota // 200
	Status5xx                  // the proxy answered 5xx (502: nothing accepted it)
	OtherStatus                // any other status
	Timeout                    // no answer within the client's time-out
	Refused                    // the connection to the proxy was refused
	OtherError                 // reset, EOF, ...
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "5xx", "other status", "time-out", "refused", "other error"}

func (o Outcome) String() string { return outcomeNames[o] }

// Classify names the outcome of a request that ended with resp (nil on
// error) and err.
func Classify(resp *http.Response, err error) Outcome {
	var ne net.Error
	switch {
	case err == nil && resp.StatusCode == http.StatusOK:
		return OK
	case err == nil && resp.StatusCode >= 500:
		return Status5xx
	case err == nil:
		return OtherStatus
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return Timeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	}
	return OtherError
}

// Sample is one request: when it was due, how long it took from then
// (an open-loop client measures from the schedule, so a stalled server
// cannot hide its delay), and how it ended.
type Sample struct {
	Latency time.Duration
	Outcome Outcome
}

// Load is an open-loop client: Rate requests a second for Duration, each
// on a new connection, whatever happened to the earlier ones, each
// given Timeout.
type Load struct {
	URL      string
	Rate     int
	Duration time.Duration
	Timeout  time.Duration
}

// Run sends every request and returns all of them, in schedule order.
// A cancelled ctx stops the schedule; requests in flight still end
// within Timeout and are counted.
func (l Load) Run(ctx context.Context) []Sample {
	n := int(float64(l.Rate) * l.Duration.Seconds())
	interval := time.Second / time.Duration(l.Rate)
	client := &http.Client{
		Timeout:   l.Timeout,
		Transport: &http.Transport{DisableKeepAlives: true},
	}
	defer client.CloseIdleConnections()
	results := make([]Sample, n)
	var wg sync.WaitGroup
	start := time.Now()
	sent := 0
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		sent++
		wg.Go(func() {
			resp, err := client.Get(l.URL)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil {
					resp = nil
				}
			}
			results[i] = Sample{Latency: time.Since(due), Outcome: Classify(resp, err)}
		})
	}
	wg.Wait()
	return results[:sent]
}

// Summary is what a load run reports.
type Summary struct {
	Total, Failed int
	By            [numOutcomes]int
	P99           time.Duration
}

// Summarize counts the samples and takes the 99th percentile of every
// request's latency, failed ones included: a fast 502 is fast, and a
// time-out counts as its full wait.
func Summarize(samples []Sample) Summary {
	var s Summary
	lat := make([]float64, 0, len(samples))
	for _, x := range samples {
		s.Total++
		s.By[x.Outcome]++
		if x.Outcome != OK {
			s.Failed++
		}
		lat = append(lat, float64(x.Latency))
	}
	s.P99 = time.Duration(Percentile(lat, 99))
	return s
}

// Failures lists the failed outcomes with their counts, "" when none.
func (s Summary) Failures() string {
	var parts []string
	for o := OK + 1; o < numOutcomes; o++ {
		if s.By[o] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", o, s.By[o]))
		}
	}
	return strings.Join(parts, ", ")
}

// Percentile is the nearest-rank p-th percentile of vals (0 < p <= 100):
// the smallest value that at least p % of the values do not exceed.
// NaN for no values.
func Percentile(vals []float64, p float64) float64 {
	if len(vals) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(vals))
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}
