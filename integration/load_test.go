// SPDX-License-Identifier: Apache-2.0

//go:build linux

package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// outcome is how one request through the proxy ended.
type outcome int

const (
	ok200 outcome = iota
	status502
	status504
	otherStatus
	connError // no HTTP answer at all: refused, reset, timed out
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"200", "502", "504", "other status", "connection error"}

// tally counts every request of a load run exactly, by outcome, and
// keeps a few examples of the failures for the log.
type tally struct {
	counts   [numOutcomes]int
	examples []string
}

func (t *tally) add(o tally) {
	for i, n := range o.counts {
		t.counts[i] += n
	}
	for _, e := range o.examples {
		if len(t.examples) < 10 {
			t.examples = append(t.examples, e)
		}
	}
}

func (t tally) total() int {
	n := 0
	for _, c := range t.counts {
		n += c
	}
	return n
}

func (t tally) failed() int { return t.total() - t.counts[ok200] }

func (t tally) String() string {
	var parts []string
	for i, n := range t.counts {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s: %d", outcomeNames[i], n))
		}
	}
	return strings.Join(parts, ", ")
}

// load sends GET url from workers concurrent clients, each on its own
// keep-alive connection, until the deadline, and counts every request.
// A request that started before the deadline always runs to its end (no
// cancellation), so it is counted as what the proxy made of it.
func load(url string, workers int, until time.Time) tally {
	results := make(chan tally, workers) // one each; nobody blocks
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			var t tally
			for time.Now().Before(until) {
				o, detail := get(client, url)
				t.counts[o]++
				if o != ok200 && len(t.examples) < 10 {
					t.examples = append(t.examples, detail)
				}
			}
			results <- t
		}()
	}
	wg.Wait()
	close(results)
	var sum tally
	for r := range results {
		sum.add(r)
	}
	return sum
}

func get(client *http.Client, url string) (outcome, string) {
	resp, err := client.Get(url)
	if err != nil {
		return connError, err.Error()
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return connError, err.Error()
	case resp.StatusCode == http.StatusOK:
		return ok200, ""
	case resp.StatusCode == http.StatusBadGateway:
		return status502, resp.Status
	case resp.StatusCode == http.StatusGatewayTimeout:
		return status504, resp.Status
	default:
		return otherStatus, resp.Status
	}
}
