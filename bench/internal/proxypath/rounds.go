// SPDX-License-Identifier: Apache-2.0

//go:build linux

package proxypath

import (
	"context"
	"fmt"
	"time"
)

// plan is how long the part measures. The whole part must fit in about
// 2 minutes (30 s with -quick), setup included (about 1 s), which rules
// out the 10 s wrk runs in several rounds. Many short rounds beat
// few long ones here: this machine's noise (other work on the same 2
// vCPUs) comes in bursts of seconds, and the runs that a round compares
// (see order) lie closer together. 3 s at 10,000 to 30,000 requests/s
// still puts hundreds of requests past the p99. So: 6 rounds × 6 cases ×
// 3 s = 108 s, and 2 × 6 × 2 s = 24 s quick, two rounds so that even a
// smoke run goes through the interleaving.
type plan struct {
	rounds int
	dur    time.Duration // of one wrk run; whole seconds (wrk's -d)
	// budget bounds the whole part, should anything hang past its own
	// time-out.
	budget time.Duration
}

func planFor(quick bool) plan {
	if quick {
		return plan{rounds: 2, dur: 2 * time.Second, budget: time.Minute}
	}
	return plan{rounds: 6, dur: 3 * time.Second, budget: 3 * time.Minute}
}

// measure runs wrk on every case, round after round, in the order of
// order, and returns results[i], case i's runs in round order.
func (p *part) measure(ctx context.Context, pl plan) ([][]wrkResult, error) {
	results := make([][]wrkResult, len(p.cases))
	for round := 0; round < pl.rounds; round++ {
		for _, i := range order(round) {
			c := p.cases[i]
			res, err := runWrk(ctx, p.url(c), pl.dur)
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", round+1, c, err)
			}
			if err := p.alive(); err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", round+1, c, err)
			}
			results[i] = append(results[i], res)
			p.env.Logf("proxypath: round %d/%d, %s: %.0f requests/s, p99 %v, %d failed of %d",
				round+1, pl.rounds, c, res.RPS, res.P99, res.Errors(), res.Requests)
		}
	}
	return results, nil
}

// order is the order of the cases (indexes into part.cases, see
// caseIndex) in a round. The three transports of one keepalive mode,
// which the ratio rows compare, always run back to back; odd rounds swap
// the two modes, and the order of the three within a mode goes through
// the three rotations of Unix, TCP, relay and then of its reverse, so
// that over six rounds every case runs first once and no case always
// runs right after the TCP case without keepalive (which leaves tens of
// thousands of TIME_WAIT sockets behind), and slow drift favours no
// transport.
func order(round int) []int {
	triples := [6][3]transport{
		{unixSocket, tcpLoopback, relayed}, {tcpLoopback, relayed, unixSocket}, {relayed, unixSocket, tcpLoopback},
		{unixSocket, relayed, tcpLoopback}, {relayed, tcpLoopback, unixSocket}, {tcpLoopback, unixSocket, relayed},
	}
	modes := []bool{false, true}
	if round%2 == 1 {
		modes[0], modes[1] = modes[1], modes[0]
	}
	triple := triples[(round/2)%3+3*(round%2)]
	var out []int
	for _, keepalive := range modes {
		for _, t := range triple {
			out = append(out, caseIndex(t, keepalive))
		}
	}
	return out
}
