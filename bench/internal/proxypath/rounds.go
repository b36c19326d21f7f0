package proxypath

import (
	"context"
	"fmt"
	"time"
)

// plan is how long the part measures. The whole part must fit in about
// 1.5 minutes (20 s with -quick), setup included (about 0.5 s), which
// rules out the 10 s wrk runs in several rounds. Many short
// rounds beat few long ones here: this machine's noise (other work on
// the same 2 vCPUs) comes in bursts of seconds, and the Unix and TCP runs
// that a round pairs (see order) lie closer together. 3 s at 10,000 to
// 30,000 requests/s still puts hundreds of requests past the p99. So:
// 6 rounds × 4 cases × 3 s = 72 s, and 2 × 4 × 2 s = 16 s quick, two
// rounds so that even a smoke run goes through the interleaving.
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

// order is the order of the cases (indexes into part.cases: Unix and TCP
// without keepalive, then with) in a round. The Unix and TCP runs of one
// keepalive mode, which the ratio rows pair, always run back to back; odd
// rounds swap the two modes, and every other pair of rounds runs TCP
// before Unix, so that no case always runs first, or always right after
// the TCP case without keepalive (which leaves tens of thousands of
// TIME_WAIT sockets behind), and slow drift does not favour either side.
func order(round int) []int {
	pairs := [][2]int{{0, 1}, {2, 3}}
	if round%2 == 1 {
		pairs[0], pairs[1] = pairs[1], pairs[0]
	}
	var out []int
	for _, pr := range pairs {
		if (round/2)%2 == 1 {
			pr[0], pr[1] = pr[1], pr[0]
		}
		out = append(out, pr[0], pr[1])
	}
	return out
}
